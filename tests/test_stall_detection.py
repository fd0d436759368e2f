"""Whether a streaming service is alive depends on it answering, never on its clock.

The real livekit-plugins-assemblyai client talks to the AssemblyAI v3 stand-in, which
transcribes what it receives with Whisper but can send its words with times that do not agree
with the kit's: none at all, zero, or counted from a clock seconds behind the stream's (the
plugin adds the stream's start offset to each, so "no time" arrives as a small non-zero
number). A dropped connection makes the plugin open a new session, whose times start again.
Each healthy case transcribes a whole recording; a service that really goes quiet still fails
the run with the kit's one line.
"""

from __future__ import annotations

import asyncio
import wave
from collections.abc import AsyncIterator
from pathlib import Path

import numpy as np
import pytest

from benchmarks.scoring import corpus_wer
from stt_agent import TranscriptFeed, samples
from stt_agent.audio import FileSource
from stt_agent.config import Secret, Settings
from stt_agent.engines import make_stt
from stt_agent.engines.assemblyai import AssemblyAISTT
from stt_agent.engines.assemblyai_simulator import whisper_words
from stt_agent.local import EngineError, LocalRun
from stt_agent.progress import DEFAULT_STALL_S
from tests.cli import clean_env, run_cli
from tests.standins.assemblyai_v3 import AssemblyAIStandIn, WordTimes

KEY = "0123456789abcdef0123456789abcdef"
CLIP = "librispeech_2412"  # 11.7 s, several pauses: several turns and VAD segments
# Whisper tiny.en through the stand-in's turns on this clip (measured 0.02-0.05).
MAX_WER = 0.15
# A stall window short enough to keep the stalled cases quick; the healthy cases run with
# the kit's default (30 s), the window the false alarm came after.
SHORT_STALL_S = 6.0


def _settings(aai: AssemblyAIStandIn) -> Settings:
    return Settings(
        assemblyai_api_key=Secret(KEY),
        assemblyai_base_url=aai.base_url,
        assemblyai_min_turn_silence_ms=400,
        assemblyai_max_turn_silence_ms=1200,
    )


@pytest.fixture
async def engines() -> AsyncIterator[list[AssemblyAISTT]]:
    made: list[AssemblyAISTT] = []
    yield made
    for engine in made:
        await engine.aclose()


async def _transcribe(
    aai: AssemblyAIStandIn,
    engines: list[AssemblyAISTT],
    *,
    source: Path | None = None,
    stall_s: float = DEFAULT_STALL_S,
) -> list[str]:
    stt = make_stt(_settings(aai), engine="assemblyai")
    assert isinstance(stt, AssemblyAISTT)
    engines.append(stt)
    audio = FileSource(source or samples.path(CLIP))
    local = LocalRun(source=audio, stt=stt, feed=TranscriptFeed(), stall_s=stall_s)
    return [u.text for u in await local.run()]


def _wer(texts: list[str]) -> float:
    return corpus_wer([samples.info(CLIP).text], [" ".join(texts)])


@pytest.mark.parametrize("word_times", ["missing", "zero", "behind"])
async def test_word_times_that_disagree_with_the_kit_never_fail_a_healthy_run(
    word_times: WordTimes, engines: list[AssemblyAISTT]
) -> None:
    async with AssemblyAIStandIn(
        transcribe=whisper_words(), api_key=KEY, word_times=word_times
    ) as aai:
        texts = await _transcribe(aai, engines)  # raises EngineError on a false stall
        sent = [t for s in aai.sessions for t in s.turns if t["end_of_turn"]]
    assert sent, "the stand-in sent no final turn"
    if word_times == "missing":
        assert all("start" not in w for t in sent for w in t["words"])
    assert _wer(texts) <= MAX_WER, texts


# Two recordings with a pause between them long enough for the first turn to end and be
# answered (1.2 s of silence, then Whisper's time on a busy machine): the stand-in drops the
# connection in the pause, so no words are in flight and WER measures the run alone.
PAIR = ("austen_0880", "austen_0930")
PAUSE_S = 5.0


def _pair_wav(folder: Path) -> Path:
    path = folder / "two_sentences.wav"
    pcm = np.concatenate(
        [samples.load(PAIR[0]), np.zeros(int(PAUSE_S * 16_000), np.int16), samples.load(PAIR[1])]
    )
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(16_000)
        w.writeframes(pcm.astype("<i2").tobytes())
    return path


async def test_a_reconnect_whose_word_times_start_again_never_fails_a_healthy_run(
    engines: list[AssemblyAISTT], tmp_path: Path
) -> None:
    async with AssemblyAIStandIn(transcribe=whisper_words(), api_key=KEY) as aai:
        aai.drop_next_session_after_first_final()  # a network drop (no close frame)
        texts = await _transcribe(aai, engines, source=_pair_wav(tmp_path))
        sessions = list(aai.sessions)
    assert len(sessions) >= 2 and sessions[0].dropped, "the connection was not dropped"
    # The new session's clock started again: the second sentence, 8 s into the stream, is
    # timed from the new session's own zero.
    second_at_ms = (samples.info(PAIR[0]).seconds + PAUSE_S) * 1000
    later = [t for s in sessions[1:] for t in s.turns if t["words"]]
    assert later and later[0]["words"][0]["start"] < second_at_ms - 1000, later[:1]
    reference = " ".join(samples.info(name).text for name in PAIR)
    assert corpus_wer([reference], [" ".join(texts)]) <= MAX_WER, texts


async def test_the_cli_transcribes_with_a_service_that_sends_no_word_times() -> None:
    """The issue's case: every turn reached the transcript, then a false "stopped answering"."""
    async with AssemblyAIStandIn(
        transcribe=whisper_words(), api_key=KEY, word_times="missing"
    ) as aai:
        env = clean_env(ASSEMBLYAI_API_KEY=KEY, ASSEMBLYAI_BASE_URL=aai.base_url)
        clip = str(samples.path(CLIP))
        result = await asyncio.to_thread(
            run_cli, "transcribe", "--engine", "assemblyai", clip, env=env
        )
    assert result.returncode == 0, result.stderr
    assert "stopped answering" not in result.stderr and "Traceback" not in result.stderr
    # "[  0.00 ->   0.00] text": the times are the service's; the words are what count
    texts = [line.split("] ", 1)[-1] for line in result.stdout.splitlines()]
    assert _wer(texts) <= MAX_WER, result.stdout


@pytest.mark.parametrize("word_times", ["exact", "missing"])
async def test_a_service_that_really_goes_quiet_still_fails_with_one_line(
    word_times: WordTimes, engines: list[AssemblyAISTT], tmp_path: Path
) -> None:
    async with AssemblyAIStandIn(
        transcribe=whisper_words(), api_key=KEY, word_times=word_times
    ) as aai:
        aai.answer_only_the_first_turn()  # then connected, taking audio, and silent
        with pytest.raises(EngineError) as failure:
            await _transcribe(aai, engines, source=_pair_wav(tmp_path), stall_s=SHORT_STALL_S)
        answered = [t for s in aai.sessions for t in s.turns]
        audio_s = sum(s.audio_seconds for s in aai.sessions)
        port = aai.base_url.rsplit(":", 1)[1].split("/")[0]
    message = str(failure.value)
    assert message.startswith(f"AssemblyAI at 127.0.0.1:{port} stopped answering: "), message
    assert "got no transcript" in message and "\n" not in message
    assert KEY not in message
    assert answered, "the stand-in answered nothing before going quiet"
    # the second sentence went to the service: the service, not the source, went quiet
    assert audio_s > samples.info(PAIR[0]).seconds + PAUSE_S + 1.0
