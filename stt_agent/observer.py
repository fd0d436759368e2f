"""What the kit adds around the tutorial's agent: watching the STT and delivering turns.

`TurnObserver` sits on LiveKit's `stt_node` (it sees every `SpeechEvent` on its way to the
session) and on `on_user_turn_completed` (it delivers each finished turn). It publishes interim
text to the feed, times finals from the end of speech, runs the turn handlers, and keeps the
run's `RunProgress` up to date, so the `Transcriber` itself stays the tutorial's few lines.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterable, AsyncIterator, Callable, Coroutine
from typing import Any

from livekit import rtc
from livekit.agents import Agent, stt, vad

from .feed import CaptionFinal, FeedEvent, MetricsEvent, TranscriptFeed, Utterance
from .handlers import TurnHandlers
from .progress import RunProgress
from .speech_watch import SpeechWatch

__all__ = ["AudioClock", "TurnObserver"]

logger = logging.getLogger("transcriber")

# Audio seconds -> wall clock when that audio was spoken; None when the audio did not come
# in real time (a file crunched as fast as possible has no meaningful "latency").
AudioClock = Callable[[float], float | None]


class TurnObserver:
    """Interims, timing, handlers, feed and progress for one session's turns."""

    def __init__(
        self,
        *,
        feed: TranscriptFeed | None = None,
        handlers: TurnHandlers | None = None,
        progress: RunProgress | None = None,
        source: str | None = None,
        participant: str | None = None,
        audio_clock: AudioClock | None = None,
        speech_detector: vad.VAD | None = None,
    ) -> None:
        """`speech_detector`: a VAD that listens alongside a streaming service, so the run
        knows which speech the service still owes an answer for (see `SpeechWatch`)."""
        self.feed = feed if feed is not None else TranscriptFeed()
        self.handlers = handlers if handlers is not None else TurnHandlers()
        self.progress = progress if progress is not None else RunProgress(exact=False)
        self.source = source
        self._participant = participant
        self._agent: Agent | None = None
        self.audio_clock = audio_clock
        # Final SpeechEvents of the turn in progress, consumed when the turn completes.
        self._turn_finals: list[stt.SpeechEvent] = []
        self._last_interim: Utterance | None = None
        self._delivering = 0
        self._background: set[asyncio.Task[None]] = set()
        self.closed = False  # once set, nothing more reaches the feed
        self._detector = speech_detector
        self._watch: SpeechWatch | None = None

    @property
    def participant(self) -> str:
        """The given identity, else the room participant the session is linked to."""
        if self._participant is not None:
            return self._participant
        try:
            linked = self._agent.session.room_io.linked_participant if self._agent else None
        except (RuntimeError, AttributeError):
            linked = None
        return linked.identity if linked is not None else "local"

    # --- the STT side ---------------------------------------------------------------------------

    async def count(self, audio: AsyncIterable[rtc.AudioFrame]) -> AsyncIterator[rtc.AudioFrame]:
        """The audio on its way into the STT, counted (16 kHz samples)."""
        if self._detector is not None and self._watch is None:
            self._watch = SpeechWatch(self._detector, self.progress)
        async for frame in audio:
            if self._watch is not None:
                self._watch.push(frame)
            yield frame
            self.progress.at_stt += frame.samples_per_channel * 16_000 // frame.sample_rate
            self.progress.touch()

    async def observe(
        self, events: AsyncIterable[stt.SpeechEvent | str], agent: Agent
    ) -> AsyncIterator[stt.SpeechEvent | str]:
        """The STT's events on their way to `agent`'s session, watched."""
        self._agent = agent
        recogniser = agent.stt if isinstance(agent.stt, stt.STT) else None
        if recogniser is not None:
            recogniser.on("metrics_collected", self._on_stt_metrics)
            recogniser.on("error", self._on_stt_error)
        try:
            async for event in events:
                if isinstance(event, stt.SpeechEvent):
                    self._on_event(event)
                yield event
        finally:
            if recogniser is not None:
                recogniser.off("metrics_collected", self._on_stt_metrics)
                recogniser.off("error", self._on_stt_error)

    def _on_event(self, event: stt.SpeechEvent) -> None:
        progress = self.progress
        if event.type == stt.SpeechEventType.FINAL_TRANSCRIPT:
            self._last_interim = None
            if event.alternatives and event.alternatives[0].text.strip():
                alt = event.alternatives[0]
                self._answered()
                self._turn_finals.append(event)
                progress.finals += 1
                # Locked text at once; the turn it belongs to is delivered when it ends.
                end = alt.end_time or None
                now = time.time()
                self._publish(
                    CaptionFinal(
                        text=alt.text.strip(),
                        participant=self.participant,
                        start=alt.start_time if alt.end_time else None,
                        end=end,
                        source=self.source,
                        received_at=now,
                        latency_s=self._latency(event, end, now),
                    )
                )
            if not progress.exact:
                progress.speech_open = False
        elif event.type == stt.SpeechEventType.INTERIM_TRANSCRIPT and event.alternatives:
            alt = event.alternatives[0]
            if alt.text.strip():
                self._answered()
                if not progress.exact:
                    progress.speech_open = True
                self._last_interim = Utterance(
                    text=alt.text.strip(),
                    final=False,
                    participant=self.participant,
                    start=alt.start_time or None,
                    end=alt.end_time or None,
                    language=str(alt.language) if alt.language else None,
                    source=self.source,
                )
                self._publish(self._last_interim)
        progress.turns_open = len(self._turn_finals) + self._delivering
        progress.touch(recogniser=True)

    def _answered(self) -> None:
        """Words arrived: the service is alive and has answered the audio sent so far (on the
        kit's clock; its word times need not agree with it, see `SpeechWatch`)."""
        if self._watch is not None:
            self._watch.answered()

    def _on_stt_metrics(self, metrics: Any) -> None:
        if getattr(metrics, "audio_duration", 0):
            self._publish(MetricsEvent("stt", metrics.model_dump(exclude={"metadata"})))

    def _on_stt_error(self, error: stt.STTError) -> None:
        """A dropped connection loses the turn in flight: the new session only hears what
        comes next, and the old one never sends its final. Keep what was heard by delivering
        the last interim as a final, marked as such, instead of losing those words."""
        heard, self._last_interim = self._last_interim, None
        if not error.recoverable or heard is None or not self.progress.speech_open:
            return
        self.progress.speech_open = False
        heard.final = True
        heard.annotations["recovered"] = "last interim before the STT connection dropped"
        logger.info(f" -> {heard.text}")
        self._in_background(self._deliver(heard))

    # --- the turn side --------------------------------------------------------------------------

    async def deliver(self, text: str, message: Any = None) -> Utterance:
        """A finished turn: timed, through the handlers, into the feed."""
        # No await between taking the turn's finals and counting the delivery: the run
        # watching `turns_open` cannot slip in between.
        utterance = self._utterance(text)
        metrics = getattr(message, "metrics", None)
        if metrics:
            self._publish(MetricsEvent("eou", dict(metrics)))
        # The handlers run in a task of our own, so closing can cancel them without
        # cancelling LiveKit's task that called us (which then finishes normally).
        task = self._in_background(self._deliver(utterance))
        try:
            await asyncio.shield(task)
        except asyncio.CancelledError:
            if not task.cancelled():
                raise  # LiveKit cancelled us, not our own close()
        return utterance

    def _in_background(self, work: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        task = asyncio.create_task(work, name="stt_agent.deliver_turn")
        self._background.add(task)
        task.add_done_callback(self._background.discard)
        if self.closed:
            task.cancel()
        return task

    async def _deliver(self, utterance: Utterance) -> None:
        self._delivering += 1
        self.progress.turns_open = len(self._turn_finals) + self._delivering
        try:
            await self.handlers.run(utterance)
            self._publish(utterance)
        finally:
            self._delivering -= 1
            self.progress.delivered += 1
            self.progress.turns_open = len(self._turn_finals) + self._delivering
            self.progress.touch(recogniser=True)

    def _publish(self, event: FeedEvent) -> None:
        if not self.closed:
            self.feed.publish(event)

    def _take_turn_finals(self, text: str) -> list[stt.SpeechEvent]:
        """The finals that make up the turn LiveKit completed with `text`, oldest first.

        LiveKit queues a turn behind the previous one while that one is still in the
        handlers, so finals of the next turn may already be here: they stay, and keep
        `turns_open` up until their own turn is delivered (taking them all would let the run
        end and close the session under a turn LiveKit has yet to hand over). A turn's text
        is its finals' texts joined, so words are counted off the front."""
        wanted = len(text.split())
        taken: list[stt.SpeechEvent] = []
        while self._turn_finals and (wanted > 0 or not taken):
            final = self._turn_finals.pop(0)
            taken.append(final)
            wanted -= len(final.alternatives[0].text.split())
        return taken

    def _utterance(self, text: str) -> Utterance:
        finals = self._take_turn_finals(text)
        delivered_at = time.time()
        start = end = latency = language = None
        if finals:
            first, last = finals[0].alternatives[0], finals[-1].alternatives[0]
            start, end = first.start_time, last.end_time
            language = str(last.language) if last.language else None
            latency = self._latency(finals[-1], end, delivered_at)
        return Utterance(
            text=text.strip(),
            final=True,
            participant=self.participant,
            start=start,
            end=end,
            latency_s=latency,
            language=language,
            source=self.source,
            received_at=delivered_at,
        )

    def _latency(self, final: stt.SpeechEvent, end: float | None, now: float) -> float | None:
        """End of speech -> delivered, only for audio that arrived as it was spoken."""
        if self.audio_clock is None:
            spoken_until = final.speech_end_time  # live audio: the STT's own wall clock
        else:
            spoken_until = self.audio_clock(end) if end else None
        return max(0.0, now - spoken_until) if spoken_until else None

    def close(self) -> None:
        """Nothing reaches the feed after this; turns still in the handlers are cancelled."""
        self.closed = True
        for task in list(self._background):
            task.cancel()

    async def aclose(self) -> None:
        self.close()
        if self._watch is not None:
            await self._watch.aclose()
        if self._background:
            await asyncio.gather(*self._background, return_exceptions=True)
