"""One clip through one system (kit or baseline), real-time paced or as fast as possible.

Every feed event is kept with the wall clock it arrived at, together with the source's
`first_frame_at`, so latencies can be computed afterwards against the audio's own clock.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

from stt_agent.audio import FileSource
from stt_agent.engines import LocalSTT
from stt_agent.feed import CaptionFinal, TranscriptFeed, Utterance
from stt_agent.local import LocalRun

from .baseline import BaselineRun, MeasuredWhisperSTT

if TYPE_CHECKING:
    from faster_whisper import WhisperModel
    from livekit.agents import vad

    from .clips import Clip

System = Literal["kit", "baseline"]


@dataclass
class RunRecord:
    system: System
    clip: Clip
    realtime: bool
    started_at: float  # wall clock when the run was started
    first_frame_at: float | None = None  # wall clock of the first audio frame
    ended_at: float = 0.0
    events: list[Utterance] = field(default_factory=list)  # interim and final, in feed order
    captions: list[CaptionFinal] = field(default_factory=list)  # caption finals, in feed order
    notes: dict[str, int] = field(default_factory=dict)

    @property
    def finals(self) -> list[Utterance]:
        return [e for e in self.events if e.final]

    @property
    def text(self) -> str:
        return " ".join(u.text for u in self.finals)

    @property
    def processing_s(self) -> float:
        """Run start -> last final delivered (drain and session close are not counted)."""
        finals = self.finals
        end = finals[-1].received_at if finals else self.ended_at
        return max(0.0, end - self.started_at)


@dataclass
class Baseline:
    """The baseline's shared, already loaded parts: one Whisper model and one Silero VAD."""

    model: WhisperModel
    vad: vad.VAD


def _recording_feed(record: RunRecord) -> TranscriptFeed:
    feed = TranscriptFeed()

    def keep(event: object) -> None:
        if isinstance(event, Utterance):
            record.events.append(event)
        elif isinstance(event, CaptionFinal):
            record.captions.append(event)

    feed.subscribe(keep)
    return feed


async def run_kit(clip: Clip, *, realtime: bool, stt: LocalSTT | None = None) -> RunRecord:
    """The kit's own local-mode runner on one clip (a LocalSTT of its own unless given)."""
    source = FileSource(clip.path, realtime=realtime)
    record = RunRecord("kit", clip, realtime, started_at=time.time())
    run = LocalRun(
        source=source,
        stt=stt or LocalSTT(),
        feed=_recording_feed(record),
    )
    try:
        await run.run()
    finally:
        record.ended_at = time.time()
        record.first_frame_at = source.first_frame_at
    return record


async def run_baseline(clip: Clip, baseline: Baseline, *, realtime: bool) -> RunRecord:
    source = FileSource(clip.path, realtime=realtime)
    record = RunRecord("baseline", clip, realtime, started_at=time.time())
    engine = MeasuredWhisperSTT(baseline.model, clip.pcm)
    run = BaselineRun(source=source, stt=engine, vad=baseline.vad, feed=_recording_feed(record))
    try:
        await run.run()
    finally:
        record.ended_at = time.time()
        record.first_frame_at = source.first_frame_at
        record.notes["unlocated"] = engine.unlocated
        record.notes["drain_timed_out"] = int(run.drain_timed_out)
        record.notes["decode_ms"] = round(engine.decode_s * 1000)
    return record
