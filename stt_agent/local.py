"""Local mode: the Transcriber in an `AgentSession` whose audio input is a file, array or widget.

No LiveKit server and no worker: LiveKit's own `session.input.audio` extension point is fed
from an `AudioSource`, and everything after it (STT, turn detection, `on_user_turn_completed`)
is the same code that runs in a room.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Any

from livekit.agents import stt as lk_stt

from .agent import Transcriber, make_session
from .audio import AudioSource, as_source
from .audio_input import SourceAudioInput
from .config import Settings, load_settings
from .engines import LocalSTT, load_vad, make_stt
from .engines.assemblyai import AssemblyAISTT
from .errors import EngineError, StalledError
from .feed import TranscriptFeed, Utterance
from .handlers import TurnHandlers
from .observer import TurnObserver
from .progress import DEFAULT_STALL_S, RunProgress, current_progress
from .progress_bar import follow, in_notebook, wants_bar

__all__ = ["EngineError", "LocalRun", "transcribe", "transcribe_file"]

# How long `request_stop` lets the turns already heard finish before the session closes.
_STOP_DRAIN_S = 2.0


def describe_engine(stt: lk_stt.STT[Any]) -> str:
    """ "AssemblyAI at api.assemblyai.com" or "the local engine": what a failure line names."""
    if isinstance(stt, LocalSTT):
        return "the local speech engine"
    if isinstance(stt, AssemblyAISTT):
        return f"AssemblyAI at {stt.host}"
    return stt.label.rsplit(".", 1)[-1]


def describe_engine_error(error: BaseException, stt: lk_stt.STT[Any]) -> str:
    """One actionable line. Client exceptions can carry request headers (the key), so only
    their type and status are used, never their text."""
    status = getattr(error, "status", None) or getattr(error, "status_code", None)
    name = describe_engine(stt)
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
    """One local-mode session from start to done; `start_local` runs it in a task.

    The run ends by its `RunProgress`, never by a clock: when every second of audio was
    recognised and every turn went through the handlers (done), or when the recogniser owes
    an answer and has given no sign of life for `stall_s` (an `EngineError` saying what was
    not transcribed).
    """

    source: AudioSource
    stt: lk_stt.STT[Any]
    feed: TranscriptFeed
    handlers: TurnHandlers = field(default_factory=TurnHandlers)
    stall_s: float = DEFAULT_STALL_S
    progress: RunProgress = field(init=False)
    _audio_input: SourceAudioInput | None = field(default=None, init=False)
    _stop_requested: bool = field(default=False, init=False)

    def __post_init__(self) -> None:
        info = getattr(self.source, "info", None)
        self.progress = RunProgress(
            total_s=getattr(info, "duration_s", None),
            # The local engine reports every sample it has processed; a streaming service
            # only reports the turns it hears.
            exact=isinstance(self.stt, LocalSTT),
            stall_s=self.stall_s,
        )

    async def request_stop(self) -> None:
        """Stop reading the source; turns already heard get `_STOP_DRAIN_S` to finish."""
        self._stop_requested = True
        if self._audio_input is not None:
            self._audio_input.stop()
        self.progress.touch()

    async def run(self, *, started: asyncio.Event | None = None) -> list[Utterance]:
        """Transcribe the whole source; returns this run's final utterances in order."""
        progress = self.progress
        source = self.source
        if not progress.exact and getattr(source, "realtime", True) is False:
            # Streaming services expect audio at the speed it is spoken (AssemblyAI closes a
            # session that sends faster, error 3007), so files are paced for them.
            source.realtime = True  # type: ignore[attr-defined]  # paced sources only: checked above
        realtime = getattr(source, "realtime", True)
        turns = TurnObserver(
            feed=self.feed,
            handlers=self.handlers,
            progress=progress,
            source=source.name,
            # Latency means "end of speech -> text" only for audio that came in real time;
            # a file crunched as fast as the recogniser goes has none (null).
            audio_clock=getattr(source, "wall_time_of", None) if realtime else _no_clock,
            speech_detector=None if progress.exact else load_vad(),
        )
        finals: list[Utterance] = []
        unsubscribe = self.feed.subscribe(
            lambda e: (
                finals.append(e)
                if isinstance(e, Utterance) and e.final and e.source == source.name
                else None
            )
        )
        audio_input = self._audio_input = SourceAudioInput(source, progress)
        session = make_session(close_transcript_timeout=0.2)
        session.input.audio = audio_input
        failure: list[EngineError] = []

        def on_stt_error(event: lk_stt.STTError) -> None:
            if not event.recoverable and not failure:
                failure.append(EngineError(describe_engine_error(event.error, self.stt)))
                progress.touch()

        self.stt.on("error", on_stt_error)
        try:
            # The session's tasks, the STT stream among them, are created inside `start` and
            # take the run's progress record with them.
            token = current_progress.set(progress)
            try:
                await session.start(agent=Transcriber(stt=self.stt, turns=turns), record=False)
            finally:
                current_progress.reset(token)
            if started is not None:
                started.set()
            await self._until_done(failure)
        finally:
            self.stt.off("error", on_stt_error)
            turns.close()  # first: a turn stuck in a handler would hold the session open
            await session.aclose()
            await turns.aclose()
            unsubscribe()
        if failure:
            raise failure[0]
        if audio_input.error is not None:
            raise audio_input.error
        return finals

    async def _until_done(self, failure: list[EngineError]) -> None:
        progress = self.progress
        stop_deadline: float | None = None
        while not failure:
            verdict = progress.verdict()
            if verdict.state == "done":
                return
            if verdict.state == "stalled":
                failure.append(
                    StalledError(f"{describe_engine(self.stt)} stopped answering: {verdict.reason}")
                )
                return
            if self._stop_requested:
                # A stop is bounded: what is already in the handlers may finish, briefly.
                stop_deadline = stop_deadline or time.monotonic() + _STOP_DRAIN_S
                if not progress.turns_open or time.monotonic() > stop_deadline:
                    return
            # Woken by every write to the record; the timeout only lets the stall clock be read.
            await progress.changed(timeout=1.0)


def _no_clock(_audio_s: float) -> float | None:
    return None


async def transcribe(
    source: object,
    *,
    realtime: bool = False,
    sample_rate: int = 16_000,
    engine: str | None = None,
    settings: Settings | None = None,
    stt: lk_stt.STT[Any] | None = None,
    feed: TranscriptFeed | None = None,
    handlers: TurnHandlers | None = None,
    progress_bar: bool | None = None,
) -> list[Utterance]:
    """Transcribe a file path, a NumPy array (at `sample_rate`) or an `AudioSource`.

    `progress_bar`: None shows one for files over a minute in a notebook, and on a terminal's
    stderr for any file; True or False decide for themselves.
    """
    audio = as_source(source, realtime=realtime, sample_rate=sample_rate)
    if stt is None:
        stt = make_stt(settings or load_settings(), engine=engine)
    run = LocalRun(
        source=audio,
        stt=stt,
        feed=feed if feed is not None else TranscriptFeed(),
        handlers=handlers if handlers is not None else TurnHandlers(),
    )
    if progress_bar is None:
        progress_bar = wants_bar(run.progress, terminal=not in_notebook())
    bar = follow(run.progress, audio.name) if progress_bar and run.progress.total_s else None
    try:
        return await run.run()
    finally:
        if bar is not None:
            bar.cancel()


async def transcribe_file(path: str, **options: Any) -> list[Utterance]:
    """`await transcribe_file("talk.mp3")`: the final utterances of one audio file; `options`
    are `transcribe`'s."""
    return await transcribe(str(path), **options)
