"""Which speech a streaming service still owes an answer for, heard by our own Silero VAD.

A streaming service (AssemblyAI) only reports the turns it hears, so when it stops answering
its silence looks like the speaker's. The run listens to the same audio with Silero VAD:
speech that no answer has come for yet is what the service owes.

Everything here is on the kit's own clock, never the service's: an answer (any transcript
with words, interim or final) covers all the audio the kit had sent when it arrived. The
service's word times are not used, because they need not agree with the kit's: a service may
send none (the plugin then reports the stream's start offset), zero, times from a clock of its
own, or times that start again when the plugin reconnects to a new session mid-stream. A
service that keeps answering while audio flows is alive, whatever its clock says; one that
goes quiet owes the speech sent since its last answer.

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
    start_s: float  # audio seconds of the stream, counted by the kit
    end_s: float
    ended_at: float  # wall clock, when the VAD closed it


class SpeechWatch:
    """Feeds a VAD stream and keeps `progress.unanswered_s` / `unanswered_since` current."""

    def __init__(self, detector: vad.VAD, progress: RunProgress) -> None:
        self.progress = progress
        self._stream = detector.stream()
        self._answered_until = 0.0  # audio seconds sent when the latest answer arrived
        self._unanswered: list[_Segment] = []
        self._task = asyncio.create_task(self._watch(), name="stt_agent.speech_watch")

    def push(self, frame: rtc.AudioFrame) -> None:
        self._stream.push_frame(frame)

    def answered(self) -> None:
        """An answer arrived: it covers every bit of audio sent to the service so far."""
        self._answered_until = max(self._answered_until, self.progress.at_stt / SAMPLE_RATE)
        self._unanswered = [s for s in self._unanswered if s.end_s > self._answered_until]
        self._publish()

    async def _watch(self) -> None:
        async for event in self._stream:
            self.progress.heard = max(self.progress.heard, event.samples_index)
            if (
                event.type == vad.VADEventType.END_OF_SPEECH
                and event.speech_duration >= MIN_SEGMENT_S
            ):
                end_s = event.samples_index / SAMPLE_RATE - event.silence_duration
                if end_s > self._answered_until:
                    start_s = end_s - event.speech_duration
                    self._unanswered.append(_Segment(start_s, end_s, time.time()))
            self._publish()

    def _publish(self) -> None:
        p = self.progress
        # Only the part of a segment sent after the latest answer is owed.
        owed = [(max(s.start_s, self._answered_until), s) for s in self._unanswered]
        p.unanswered_s = sum(s.end_s - start for start, s in owed)
        p.unanswered_since = min((s.ended_at for _, s in owed), default=None)
        p.unanswered_from = min((start for start, _ in owed), default=None)
        p.touch()

    async def aclose(self) -> None:
        await utils.aio.cancel_and_wait(self._task)
        await self._stream.aclose()
