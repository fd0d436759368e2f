"""The tutorial's transcriber, as an importable module.

The shape is the tutorial's: an `Agent` with `instructions="not-needed"` whose
`on_user_turn_completed` logs each finished utterance and raises `StopResponse` (so no LLM is
ever asked to reply), and an `entrypoint(ctx)` that joins the room audio-only and starts an
`AgentSession` with transcription output on and audio output off.

What the kit adds, through LiveKit's own hooks: the STT comes from `make_stt(settings)`
(AssemblyAI with a key, the local engine without); `stt_node` is wrapped to see every
`SpeechEvent` (interim text and timing); finished turns go through the turn handlers and
into a `TranscriptFeed` for the notebook's widgets.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterable, Callable
from typing import Any

from livekit import rtc
from livekit.agents import (
    Agent,
    AgentServer,
    AgentSession,
    AutoSubscribe,
    JobContext,
    ModelSettings,
    StopResponse,
    llm,
    room_io,
    stt,
)

from .config import Settings, load_settings
from .engines import make_stt
from .feed import MetricsEvent, TranscriptFeed, Utterance
from .handlers import TurnHandlers

__all__ = ["Transcriber", "build_server", "entrypoint", "make_session"]

logger = logging.getLogger("transcriber")

# Audio seconds -> wall clock when that audio was fed in; lets latency be measured from the
# end of speech in the audio itself when the STT does not report it.
AudioClock = Callable[[float], float | None]


class Transcriber(Agent):
    def __init__(
        self,
        *,
        stt: stt.STT | None = None,
        feed: TranscriptFeed | None = None,
        handlers: TurnHandlers | None = None,
        settings: Settings | None = None,
        source: str | None = None,
        audio_clock: AudioClock | None = None,
    ) -> None:
        super().__init__(
            instructions="not-needed",
            stt=stt if stt is not None else make_stt(settings or load_settings()),
        )
        self.feed = feed if feed is not None else TranscriptFeed()
        self.handlers = handlers if handlers is not None else TurnHandlers()
        self.source = source
        self.audio_clock = audio_clock
        # Final SpeechEvents of the turn in progress, consumed when the turn completes.
        self._turn_finals: list[stt.SpeechEvent] = []
        # Progress counters that let local mode tell when a file's last utterance is out.
        self.samples_to_stt = 0
        self.last_stt_event_at = 0.0
        self.finals_seen = 0
        self.speech_pending = False  # words heard (interim) that no final has closed yet
        self._last_interim: Utterance | None = None
        self._delivering = 0  # turns inside the handlers right now
        self._background: set[asyncio.Task[None]] = set()

    async def on_enter(self) -> None:
        if self.stt is not None:
            self.stt.on("metrics_collected", self._on_stt_metrics)
            self.stt.on("error", self._on_stt_error)

    async def on_exit(self) -> None:
        if self.stt is not None:
            self.stt.off("metrics_collected", self._on_stt_metrics)
            self.stt.off("error", self._on_stt_error)

    def _on_stt_error(self, error: stt.STTError) -> None:
        """A dropped connection loses the turn in flight: the new session only hears what
        comes next, and the old one never sends its final. Keep what was heard by delivering
        the last interim as a final, marked as such, instead of losing those words."""
        heard, self._last_interim = self._last_interim, None
        if not error.recoverable or heard is None or not self.speech_pending:
            return
        self.speech_pending = False
        rescued = Utterance(
            text=heard.text,
            final=True,
            participant=heard.participant,
            start=heard.start,
            end=heard.end,
            language=heard.language,
            source=heard.source,
            annotations={"recovered": "last interim before the STT connection dropped"},
        )
        logger.info(f" -> {rescued.text}")
        task = asyncio.create_task(self._deliver_turn(rescued))
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _deliver_turn(self, utterance: Utterance) -> None:
        self._delivering += 1
        try:
            await self.handlers.run(utterance)
            self.feed.publish(utterance)
        finally:
            self._delivering -= 1

    def _on_stt_metrics(self, metrics: Any) -> None:
        if getattr(metrics, "audio_duration", 0):
            self.feed.publish(MetricsEvent("stt", metrics.model_dump(exclude={"metadata"})))

    async def stt_node(
        self, audio: AsyncIterable[rtc.AudioFrame], model_settings: ModelSettings
    ) -> AsyncIterable[stt.SpeechEvent | str]:
        async def counted(frames: AsyncIterable[rtc.AudioFrame]) -> AsyncIterable[rtc.AudioFrame]:
            async for frame in frames:
                yield frame
                self.samples_to_stt += frame.samples_per_channel * 16_000 // frame.sample_rate

        async for event in Agent.default.stt_node(self, counted(audio), model_settings):
            self.last_stt_event_at = time.time()
            if isinstance(event, stt.SpeechEvent):
                self._observe(event)
            yield event

    def _observe(self, event: stt.SpeechEvent) -> None:
        if event.type == stt.SpeechEventType.FINAL_TRANSCRIPT:
            self.finals_seen += 1
            self.speech_pending = False
            self._last_interim = None
            if event.alternatives:
                self._turn_finals.append(event)
        elif event.type == stt.SpeechEventType.INTERIM_TRANSCRIPT and event.alternatives:
            alt = event.alternatives[0]
            if alt.text.strip():
                self.speech_pending = True
                self._last_interim = Utterance(
                    text=alt.text.strip(),
                    final=False,
                    participant=self._participant(),
                    start=alt.start_time or None,
                    end=alt.end_time or None,
                    language=str(alt.language) if alt.language else None,
                    source=self.source,
                )
                self.feed.publish(self._last_interim)

    async def on_user_turn_completed(
        self, turn_ctx: llm.ChatContext, new_message: llm.ChatMessage
    ) -> None:
        user_transcript = new_message.text_content or ""
        logger.info(f" -> {user_transcript}")
        # No await between taking the turn's finals and entering _deliver_turn: a drain
        # watching `turn_in_progress` cannot slip in between.
        utterance = self._utterance(user_transcript)
        if getattr(new_message, "metrics", None):
            self.feed.publish(MetricsEvent("eou", dict(new_message.metrics)))
        await self._deliver_turn(utterance)
        raise StopResponse()

    @property
    def turn_in_progress(self) -> bool:
        """A final transcript has been seen whose turn has not been delivered yet."""
        return bool(self._turn_finals) or self._delivering > 0

    def _utterance(self, text: str) -> Utterance:
        finals, self._turn_finals = self._turn_finals, []
        delivered_at = time.time()
        start = end = latency = language = None
        if finals:
            first, last = finals[0].alternatives[0], finals[-1].alternatives[0]
            start, end = first.start_time, last.end_time
            language = str(last.language) if last.language else None
            spoken_until = finals[-1].speech_end_time
            if spoken_until is None and self.audio_clock is not None and end:
                spoken_until = self.audio_clock(end)
            if spoken_until:
                latency = max(0.0, delivered_at - spoken_until)
        return Utterance(
            text=text.strip(),
            final=True,
            participant=self._participant(),
            start=start,
            end=end,
            latency_s=latency,
            language=language,
            source=self.source,
            received_at=delivered_at,
        )

    def _participant(self) -> str:
        try:
            linked = self.session.room_io.linked_participant
        except (RuntimeError, AttributeError):
            linked = None
        return linked.identity if linked is not None else "local"


def make_session(*, close_transcript_timeout: float = 2.0) -> AgentSession:
    """An `AgentSession` shaped for a transcriber.

    The STT decides when a turn ends (both engines endpoint on their own), and a turn is
    delivered as soon as it does: the 0.5 s `min_delay` meant to let an LLM wait for more
    words would only make transcripts late. No VAD at the session level: the local engine
    runs its own, and running a second one would double the CPU cost for nothing.
    """
    return AgentSession(
        vad=None,
        turn_handling={
            "turn_detection": "stt",
            "endpointing": {"min_delay": 0.0, "max_delay": 1.0},
            "interruption": {"enabled": False},
            "preemptive_generation": {"enabled": False},
        },
        user_away_timeout=None,
        # How long closing waits for a last transcript; local mode drains first, so it
        # passes a short one instead of paying two seconds per file.
        session_close_transcript_timeout=close_transcript_timeout,
    )


async def entrypoint(ctx: JobContext) -> None:
    """The tutorial's entrypoint: join audio-only, transcribe, publish transcriptions."""
    await ctx.connect(auto_subscribe=AutoSubscribe.AUDIO_ONLY)

    session = make_session()
    await session.start(
        agent=Transcriber(),
        room=ctx.room,
        room_options=room_io.RoomOptions(text_output=True, audio_output=False),
    )


def build_server(settings: Settings | None = None) -> AgentServer:
    """The worker the tutorial's `python stt_agent.py dev` registers: our entrypoint on an
    `AgentServer`, explicitly dispatched when an agent name is set."""
    settings = settings or load_settings()
    server = AgentServer()
    server.rtc_session(entrypoint, agent_name=settings.agent_name)
    return server
