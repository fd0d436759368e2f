"""Local mode: the Transcriber in an `AgentSession` whose audio input is a file, array or widget.

No LiveKit server and no worker: LiveKit's own `session.input.audio` extension point is fed
from an `AudioSource`, and everything after it (STT, turn detection, `on_user_turn_completed`)
is the same code that runs in a room.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field

from livekit.agents import stt as lk_stt

from .agent import Transcriber, make_session
from .audio import SAMPLE_RATE, AudioSource, SourceAudioInput, as_source
from .config import Settings, load_settings
from .engines import LocalSTT, make_stt
from .feed import TranscriptFeed, Utterance
from .handlers import TurnHandlers

__all__ = ["LocalRun", "transcribe", "transcribe_file"]

# A cloud STT gives no progress signal: it is done when it has been quiet this long after
# the last of the audio reached it.
_CLOUD_QUIET_S = 2.0
_DRAIN_TIMEOUT_S = 30.0
_STOP_DRAIN_S = 2.0


@dataclass
class LocalRun:
    """One local-mode session from start to drained; `start_local` runs it in a task."""

    source: AudioSource
    stt: lk_stt.STT
    feed: TranscriptFeed
    handlers: TurnHandlers = field(default_factory=TurnHandlers)
    agent: Transcriber | None = None
    _stop_requested: asyncio.Event = field(default_factory=asyncio.Event)

    async def request_stop(self) -> None:
        """Stop reading the source; utterances already heard are still finalised (bounded)."""
        self._stop_requested.set()

    async def run(self, *, started: asyncio.Event | None = None) -> list[Utterance]:
        """Transcribe the whole source; returns this run's final utterances in order."""
        finals: list[Utterance] = []
        unsubscribe = self.feed.subscribe(
            lambda e: finals.append(e) if isinstance(e, Utterance) and e.final else None
        )
        audio_input = SourceAudioInput(self.source)
        wall_time_of = getattr(self.source, "wall_time_of", None)
        self.agent = Transcriber(
            stt=self.stt,
            feed=self.feed,
            handlers=self.handlers,
            source=self.source.name,
            audio_clock=wall_time_of,
        )
        session = make_session()
        session.input.audio = audio_input
        # The STT may be shared by several runs; count only this run's finals.
        self._finals_at_start = getattr(self.stt, "finals_emitted", 0)
        try:
            await session.start(agent=self.agent, record=False)
            if started is not None:
                started.set()
            finished = asyncio.ensure_future(audio_input.finished.wait())
            stop = asyncio.ensure_future(self._stop_requested.wait())
            await asyncio.wait({finished, stop}, return_when=asyncio.FIRST_COMPLETED)
            finished.cancel()
            stop.cancel()
            if audio_input.error is None:
                timeout = _STOP_DRAIN_S if self._stop_requested.is_set() else _DRAIN_TIMEOUT_S
                await self._drain(self.agent, timeout)
        finally:
            await session.aclose()
            unsubscribe()
        if audio_input.error is not None:
            raise audio_input.error
        return finals

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
        await until(lambda: not agent.turn_in_progress)


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
