"""Local mode: the Transcriber in an `AgentSession` whose audio input is a file, array or widget.

No LiveKit server and no worker: LiveKit's own `session.input.audio` extension point is fed
from an `AudioSource`, and everything after it (STT, turn detection, `on_user_turn_completed`)
is the same code that runs in a room.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

from livekit import rtc
from livekit.agents import stt as lk_stt

from .agent import Transcriber, make_session
from .audio import SAMPLE_RATE, AudioSource, SourceAudioInput, as_source
from .config import Settings, load_settings
from .engines import LocalSTT, make_stt
from .feed import TranscriptFeed, Utterance
from .handlers import TurnHandlers

__all__ = ["EngineError", "LocalRun", "transcribe", "transcribe_file"]

# A cloud STT gives no progress signal: it is done when it has been quiet this long after
# the last of the audio reached it.
_CLOUD_QUIET_S = 1.0
# Longest a cloud STT is given, after the source ends, to close the last turn on silence.
_LISTENING_TAIL_MAX_S = 6.0
_LISTENING_TAIL_MIN_S = 1.5  # at least one typical end-of-turn silence
_DRAIN_TIMEOUT_S = 30.0
_STOP_DRAIN_S = 2.0


class EngineError(RuntimeError):
    """The speech engine failed for good (a refused key, an unreachable endpoint)."""


def describe_engine_error(error: BaseException, stt: lk_stt.STT) -> str:
    """One actionable line. Client exceptions can carry request headers (the key), so only
    their type and status are used, never their text."""
    status = getattr(error, "status", None) or getattr(error, "status_code", None)
    name = "AssemblyAI" if "assemblyai" in stt.label.lower() else stt.label.rsplit(".", 1)[-1]
    if status in (401, 403, 1008):
        return (
            f"{name} refused the API key (status {status}): check ASSEMBLYAI_API_KEY "
            "(`python -m stt_agent check` validates it)"
        )
    if status is not None:
        return f"{name} failed with status {status} ({type(error).__name__})"
    return f"{name} failed: {type(error).__name__}"


@dataclass
class LocalRun:
    """One local-mode session from start to drained; `start_local` runs it in a task."""

    source: AudioSource
    stt: lk_stt.STT
    feed: TranscriptFeed
    handlers: TurnHandlers = field(default_factory=TurnHandlers)
    agent: Transcriber | None = None
    _stop_requested: asyncio.Event = field(default_factory=asyncio.Event)
    _failed: asyncio.Event = field(default_factory=asyncio.Event)
    _finals_at_start: int = 0

    async def request_stop(self) -> None:
        """Stop reading the source; utterances already heard are still finalised (bounded)."""
        self._stop_requested.set()

    async def run(self, *, started: asyncio.Event | None = None) -> list[Utterance]:
        """Transcribe the whole source; returns this run's final utterances in order."""
        finals: list[Utterance] = []
        unsubscribe = self.feed.subscribe(
            lambda e: finals.append(e) if isinstance(e, Utterance) and e.final else None
        )
        source = self.source
        if not isinstance(self.stt, LocalSTT):
            # Streaming services expect audio at the speed it is spoken (AssemblyAI closes a
            # session that sends faster, error 3007), so files are paced for them.
            if getattr(source, "realtime", True) is False:
                source.realtime = True  # type: ignore[attr-defined]
            source = _ListeningTail(source, done=lambda: self._last_turn_closed())
        audio_input = SourceAudioInput(source)
        wall_time_of = getattr(self.source, "wall_time_of", None)
        self.agent = Transcriber(
            stt=self.stt,
            feed=self.feed,
            handlers=self.handlers,
            source=self.source.name,
            audio_clock=wall_time_of,
        )
        session = make_session(close_transcript_timeout=0.2)
        session.input.audio = audio_input
        failure: list[str] = []

        def on_stt_error(event: lk_stt.STTError) -> None:
            if not event.recoverable and not failure:
                failure.append(describe_engine_error(event.error, self.stt))
                self._failed.set()

        self.stt.on("error", on_stt_error)
        # The STT may be shared by several runs; count only this run's finals.
        self._finals_at_start = getattr(self.stt, "finals_emitted", 0)
        try:
            await session.start(agent=self.agent, record=False)
            if started is not None:
                started.set()
            waits = [
                asyncio.ensure_future(event.wait())
                for event in (audio_input.finished, self._stop_requested, self._failed)
            ]
            await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
            for waiting in waits:
                waiting.cancel()
            if audio_input.error is None and not failure:
                timeout = _STOP_DRAIN_S if self._stop_requested.is_set() else _DRAIN_TIMEOUT_S
                await self._drain(self.agent, timeout)
        finally:
            self.stt.off("error", on_stt_error)
            await session.aclose()
            unsubscribe()
        if audio_input.error is not None:
            raise audio_input.error
        if failure:
            raise EngineError(failure[0])
        return finals

    def _last_turn_closed(self) -> bool:
        agent = self.agent
        return agent is not None and not agent.speech_pending and not agent.turn_in_progress

    async def _drain(self, agent: Transcriber, timeout: float) -> None:
        """Wait until the last utterance of the source has gone through the handlers."""
        deadline = time.monotonic() + timeout
        finals_before = self._finals_at_start
        sent = getattr(self.source, "samples_sent", None)

        async def until(condition: object) -> None:
            while not condition() and time.monotonic() < deadline:  # type: ignore[operator]
                await asyncio.sleep(0.02)

        if sent is not None:
            # Frames pass through a few channels inside the session before the STT sees them.
            await until(lambda: agent.samples_to_stt >= sent - SAMPLE_RATE // 50)
        if isinstance(self.stt, LocalSTT):
            local = self.stt
            await until(lambda: not local.has_pending_work())
            await until(lambda: agent.finals_seen >= local.finals_emitted - finals_before)
        else:
            await until(lambda: time.time() - agent.last_stt_event_at > _CLOUD_QUIET_S)
        await until(lambda: self._failed.is_set() or not agent.turn_in_progress)


class _ListeningTail:
    """A source followed by real-time silence until `done()`, as a live microphone would be.

    Cloud STTs end a turn after their own silence threshold (AssemblyAI: up to seconds), and a
    file's trailing silence may be shorter; this keeps listening so the last turn closes the
    way it would in a room, instead of being cut off when the session closes.
    """

    def __init__(self, source: AudioSource, *, done: Callable[[], bool]) -> None:
        self.source = source
        self.name = source.name
        self._done = done
        self.tail_samples = 0

    @property
    def samples_sent(self) -> int | None:
        sent = getattr(self.source, "samples_sent", None)
        return None if sent is None else sent + self.tail_samples

    def wall_time_of(self, audio_s: float) -> float | None:
        clock = getattr(self.source, "wall_time_of", None)
        return clock(audio_s) if clock is not None else None

    async def frames(self) -> AsyncIterator[rtc.AudioFrame]:
        async for frame in self.source.frames():
            yield frame
        silence = rtc.AudioFrame.create(SAMPLE_RATE, 1, SAMPLE_RATE // 50)
        started = time.monotonic()
        while time.monotonic() - started < _LISTENING_TAIL_MAX_S:
            if time.monotonic() - started > _LISTENING_TAIL_MIN_S and self._done():
                break
            await asyncio.sleep(0.02)
            self.tail_samples += silence.samples_per_channel
            yield silence


async def transcribe(
    source: object,
    *,
    realtime: bool = False,
    sample_rate: int = 16_000,
    engine: str | None = None,
    settings: Settings | None = None,
    stt: lk_stt.STT | None = None,
    feed: TranscriptFeed | None = None,
    handlers: TurnHandlers | None = None,
) -> list[Utterance]:
    """Transcribe a file path, a NumPy array (at `sample_rate`) or an `AudioSource`."""
    audio = as_source(source, realtime=realtime, sample_rate=sample_rate)
    if stt is None:
        stt = make_stt(settings or load_settings(), engine=engine)
    run = LocalRun(
        source=audio,
        stt=stt,
        feed=feed if feed is not None else TranscriptFeed(),
        handlers=handlers if handlers is not None else TurnHandlers(),
    )
    return await run.run()


async def transcribe_file(path: str, **options: object) -> list[Utterance]:
    """`await transcribe_file("talk.mp3")`: the final utterances of one audio file."""
    return await transcribe(str(path), **options)  # type: ignore[arg-type]
