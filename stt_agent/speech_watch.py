"""Which speech a streaming service still owes an answer for, heard by our own Silero VAD.

A streaming service (AssemblyAI) only reports the turns it hears, so when it stops answering
its silence looks like the speaker's. The run listens to the same audio with Silero VAD:
speech that no transcript has covered yet is what the service owes. A transcript covers a
speech segment when it ends at or after the segment's start (both in seconds of the stream's
audio, which is how the service times its words).

Short sounds a service may rightly ignore (a cough, a click) are forgiven after a grace
period; anything longer must be answered, or the run reports the service as stalled.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

from livekit import rtc
from livekit.agents import utils, vad

from .progress import SAMPLE_RATE, RunProgress

__all__ = ["SpeechWatch"]

# Shorter VAD segments are not counted at all: Silero's own minimum is 0.1 s.
MIN_SEGMENT_S = 0.3


@dataclass
class _Segment:
    start_s: float
    duration_s: float
    ended_at: float  # wall clock, when the VAD closed it


class SpeechWatch:
    """Feeds a VAD stream and keeps `progress.unanswered_s` / `unanswered_since` current."""

    def __init__(self, detector: vad.VAD, progress: RunProgress) -> None:
        self.progress = progress
        self._stream = detector.stream()
        self._answered_until = 0.0  # audio seconds covered by transcripts so far
        self._unanswered: list[_Segment] = []
        self._task = asyncio.create_task(self._watch(), name="stt_agent.speech_watch")

    def push(self, frame: rtc.AudioFrame) -> None:
        self._stream.push_frame(frame)

    def answered(self, end_s: float) -> None:
        """A transcript reached `end_s` seconds of audio (0: the service gave no time)."""
        # A service that gives no times answers everything heard so far.
        covered = end_s or self.progress.at_stt / SAMPLE_RATE
        self._answered_until = max(self._answered_until, covered)
        self._unanswered = [s for s in self._unanswered if s.start_s > self._answered_until]
        self._publish()

    async def _watch(self) -> None:
        async for event in self._stream:
            self.progress.heard = max(self.progress.heard, event.samples_index)
            if (
                event.type == vad.VADEventType.END_OF_SPEECH
                and event.speech_duration >= MIN_SEGMENT_S
            ):
                start_s = (
                    event.samples_index / SAMPLE_RATE
                    - event.silence_duration
                    - event.speech_duration
                )
                if start_s > self._answered_until:
                    self._unanswered.append(_Segment(start_s, event.speech_duration, time.time()))
            self._publish()

    def _publish(self) -> None:
        p = self.progress
        p.unanswered_s = sum(s.duration_s for s in self._unanswered)
        p.unanswered_since = min((s.ended_at for s in self._unanswered), default=None)
        p.unanswered_from = min((s.start_s for s in self._unanswered), default=None)
        p.touch()

    async def aclose(self) -> None:
        await utils.aio.cancel_and_wait(self._task)
        await self._stream.aclose()
