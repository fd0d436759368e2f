"""The progress record of a local run: one typed contract between source, recogniser and run.

A local run ends when its audio has been recognised and every turn has gone through the
handlers, never when a clock runs out. Three parties write to one `RunProgress`:

* the source side (`SourceAudioInput`) counts the samples it hands to the session and waits
  for the recogniser when it runs too far ahead (backpressure: memory stays flat and decoding
  never outruns recognition);
* the recogniser side counts what reached the STT and what it has finished with. The local
  engine reports every sample it has processed; a streaming service only reports turns, so
  for it "recognised" means that every bit of speech it was sent has been answered (on the
  kit's clock: an answer covers the audio sent before it arrived, whatever times its words
  carry, see `SpeechWatch`);
* the turn side (`TurnObserver`) counts finals heard and turns delivered.

`verdict()` reads the record and says: keep going, done, or stalled (with what is missing).

LiveKit creates the STT stream deep inside `AgentSession`, so the run hands the record to it
through a context variable, the way LiveKit itself hands its STT pipeline to the stream
(`_STTPipelineContextVar`). Outside a local run the stream gets a record nobody reads.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import time
from dataclasses import dataclass, field
from typing import Literal

from .loops import call_on

__all__ = ["RunProgress", "Verdict", "current_progress"]

SAMPLE_RATE = 16_000
# Silero looks at 512-sample windows; a partial window at the very end is never scored.
_VAD_WINDOW = 512
# Backpressure: how far decoding may run ahead of the VAD, and how many ended utterances may
# wait for the speech model, before the source waits. Neither depends on an utterance's
# length, so a long monologue can never deadlock the source.
MAX_UNHEARD_S = 5.0
MAX_QUEUED_DECODES = 2
# No news from the recogniser for this long while it owes us an answer: the run fails.
DEFAULT_STALL_S = 30.0
# A streaming service owes an answer for this much unanswered speech however long it takes;
# less than this is given SHORT_SOUND_GRACE_S, then taken for a sound it rightly ignored.
MIN_OWED_SPEECH_S = 1.0
SHORT_SOUND_GRACE_S = 10.0


@dataclass(frozen=True)
class Verdict:
    state: Literal["running", "done", "stalled"]
    reason: str = ""


@dataclass
class RunProgress:
    """Counters in 16 kHz samples and turns; every write wakes whoever waits on the record."""

    total_s: float | None = None  # the source's length when known (files), for progress bars
    exact: bool = True  # the recogniser reports every sample it processed (the local engine)
    stall_s: float = DEFAULT_STALL_S
    # source side
    fed: int = 0
    source_done: bool = False
    peak_backlog: int = 0  # most samples ever handed over but not yet scored by the VAD
    # recogniser side
    at_stt: int = 0  # samples that entered the STT stream
    heard: int = 0  # samples the VAD has scored (local engine)
    recognised: int = 0  # samples whose speech, if any, has been decoded (local engine)
    queued_decodes: int = 0  # utterances ended but not yet decoded (local engine)
    speech_open: bool = False  # speech heard that no final has closed yet
    # Streaming services only (their silence is otherwise indistinguishable from a stall):
    # speech our own VAD heard that was sent after the service's latest answer (`SpeechWatch`).
    unanswered_s: float = 0.0  # seconds of such speech
    unanswered_from: float | None = None  # where the first of it starts, in audio seconds
    unanswered_since: float | None = None  # wall clock when the VAD closed the first of it
    last_recogniser_news: float = field(default_factory=time.monotonic)
    # turn side
    finals: int = 0  # final transcripts with words
    turns_open: int = 0  # finals not yet delivered as a turn, or turns inside the handlers
    delivered: int = 0
    _changed: asyncio.Event = field(default_factory=asyncio.Event, repr=False)
    _loop: asyncio.AbstractEventLoop | None = field(default=None, repr=False)

    # --- writing (the session's threads and loop) ---------------------------------------------

    def touch(self, *, recogniser: bool = False) -> None:
        """Something changed; `recogniser=True` when the recogniser itself made progress."""
        if recogniser:
            self.last_recogniser_news = time.monotonic()
        call_on(self._loop, self._changed.set)

    # --- reading ------------------------------------------------------------------------------

    @property
    def fed_s(self) -> float:
        return self.fed / SAMPLE_RATE

    @property
    def recognised_s(self) -> float:
        """Audio the recogniser is through with; a service, paced in real time, answers as it
        goes, so for it this is the audio it was sent."""
        return (self.recognised if self.exact else self.at_stt) / SAMPLE_RATE

    @property
    def owes_answer(self) -> bool:
        """The recogniser has been given audio it has not finished with."""
        if self.exact:
            return (
                self.at_stt - self.recognised >= _VAD_WINDOW
                or self.queued_decodes > 0
                or self.speech_open
            )
        if self.speech_open or self.unanswered_s >= MIN_OWED_SPEECH_S:
            return True
        # A short sound the service may rightly ignore (a cough, a click) is owed only for a
        # grace period, counted from when it ended.
        since = self.unanswered_since
        return since is not None and time.time() - since < SHORT_SOUND_GRACE_S

    def verdict(self) -> Verdict:
        if self.owes_answer or self.turns_open:
            idle = time.monotonic() - self.last_recogniser_news
            if idle >= self.stall_s:
                return Verdict("stalled", self._outstanding(idle))
            return Verdict("running")
        if self.source_done and self.at_stt >= self.fed:
            return Verdict("done")
        return Verdict("running")

    def _outstanding(self, idle: float) -> str:
        if self.turns_open and not self.owes_answer:
            what = f"{self.turns_open} finished turn(s) never reached the handlers"
        elif self.exact:
            what = (
                f"audio from {self.recognised / SAMPLE_RATE:.1f} s to "
                f"{self.at_stt / SAMPLE_RATE:.1f} s was not recognised"
            )
        else:
            first = self.unanswered_from
            where = f"from {first:.1f} s" if first is not None else "in progress"
            what = f"{self.unanswered_s:.1f} s of speech {where} got no transcript"
        return f"no answer for {idle:.0f} s: {what}"

    def wants_more_audio(self) -> bool:
        """Backpressure: may the source hand over another frame now?"""
        if not self.exact:
            return True  # services are paced in real time; they cannot be run ahead of
        unheard = self.fed - self.heard
        return unheard < MAX_UNHEARD_S * SAMPLE_RATE and self.queued_decodes <= MAX_QUEUED_DECODES

    async def changed(self, timeout: float | None = None) -> None:
        """Wait for the next write (or `timeout` seconds, so a stall clock can be read)."""
        self._loop = asyncio.get_running_loop()
        self._changed.clear()
        if timeout is None:
            await self._changed.wait()
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._changed.wait(), timeout)


# None outside a local run: a stream there keeps a private record (see LocalSpeechStream).
current_progress: contextvars.ContextVar[RunProgress | None] = contextvars.ContextVar(
    "stt_agent_run_progress", default=None
)
