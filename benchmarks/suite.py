"""The whole benchmark, stage by stage: start-up, accuracy and speed, streams, latency.

Stages that the other engineers' jobs could disturb least come first (fresh-interpreter
timings), the kit's memory is read before the baseline is loaded, and the real-time latency
runs alternate kit and baseline clip by clip so background load hits both alike.
"""

from __future__ import annotations

import logging
import sys
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from stt_agent.engines import LocalSTT

from . import baseline as baseline_mod
from . import machine, startup
from .clips import QUICK_CLIPS, SPEECH_THRESHOLD_DB, TINY_CLIP, Clip, load_clips
from .lag import LoopLag
from .latency import Latencies, measure, percentile
from .runs import Baseline, RunRecord, run_baseline, run_kit
from .scoring import corpus_wer, references
from .streams import KEEP_UP_P95_MS, max_realtime_streams

Progress = Callable[[str], None]

STREAM_CLIP = "jfk_inaugural_1961.wav"  # four turns in 11 s: several finals per stream
CHECK_CLIP = "cmu_goforward.wav"  # shortest clip: the shared-instance check stays cheap


@dataclass(frozen=True)
class Plan:
    name: str
    latency_clips: tuple[str, ...] | None  # None: every clip
    repeats: int
    wer_clips: tuple[str, ...] | None
    stream_clip: str
    check_clip: str
    stream_counts: tuple[int, ...]
    import_repeats: int
    check_shared_stt: bool = True


PLANS = {
    "full": Plan("full", None, 2, None, STREAM_CLIP, CHECK_CLIP, (1, 2, 4, 6, 8), 3),
    "quick": Plan("quick", QUICK_CLIPS, 1, None, STREAM_CLIP, CHECK_CLIP, (1, 2, 4), 3),
    # For the test suite: one short clip through every stage.
    "tiny": Plan("tiny", (TINY_CLIP,), 1, (TINY_CLIP,), TINY_CLIP, TINY_CLIP, (1,), 1, False),
}


class _WarningCounter(logging.Handler):
    """Counts LiveKit's warnings instead of letting them interleave with the progress lines."""

    def __init__(self) -> None:
        super().__init__(level=logging.WARNING)
        self.counts: Counter[str] = Counter()

    def emit(self, record: logging.LogRecord) -> None:
        self.counts[f"{record.name}: {record.getMessage()[:100]}"] += 1


def _stderr_progress() -> Progress:
    started = time.monotonic()

    def progress(message: str) -> None:
        print(f"[bench {time.monotonic() - started:6.1f}s] {message}", file=sys.stderr, flush=True)

    return progress


def _wer(records: list[RunRecord]) -> float:
    return corpus_wer([r.clip.reference for r in records], [r.text for r in records])


def _rtf(records: list[RunRecord]) -> float:
    return sum(r.processing_s for r in records) / sum(r.clip.duration_s for r in records)


def _ms(value: float | None) -> float | None:
    return None if value is None else round(value, 1)


async def run(plan: Plan, progress: Progress | None = None) -> dict[str, Any]:
    progress = progress or _stderr_progress()
    began = time.monotonic()
    warnings = _WarningCounter()
    livekit_log = logging.getLogger("livekit")
    saved_propagate = livekit_log.propagate
    livekit_log.addHandler(warnings)
    livekit_log.propagate = False
    try:
        result = await _run(plan, progress)
    finally:
        livekit_log.removeHandler(warnings)
        livekit_log.propagate = saved_propagate
    result["livekit_warnings"] = dict(warnings.counts.most_common(8))
    result["duration_s"] = round(time.monotonic() - began, 1)
    return result


async def _run(plan: Plan, progress: Progress) -> dict[str, Any]:
    info = machine.describe()
    progress(f"startup: import time (fresh interpreter, x{plan.import_repeats})")
    import_s = startup.import_seconds(plan.import_repeats)
    progress("startup: model load time (fresh interpreter)")
    load = startup.model_load_seconds()

    all_names = list(references())
    wer_names = list(plan.wer_clips or all_names)
    latency_names = list(plan.latency_clips or all_names)
    needed = dict.fromkeys([*wer_names, *latency_names, plan.stream_clip, plan.check_clip])
    clips = {c.name: c for c in load_clips(list(needed))}

    progress("kit: loading model")
    LocalSTT().prewarm()
    kit_fast: dict[str, RunRecord] = {}
    for name in dict.fromkeys([*wer_names, plan.stream_clip, plan.check_clip]):
        progress(f"kit: as fast as possible: {name}")
        kit_fast[name] = await run_kit(clips[name], realtime=False)

    expected = {name: len(r.finals) for name, r in kit_fast.items()}
    streams = await max_realtime_streams(
        clips[plan.stream_clip],
        list(plan.stream_counts),
        expected,
        check_clip=clips[plan.check_clip] if plan.check_shared_stt else None,
        progress=progress,
    )
    kit_rss = startup.peak_rss_mb()

    progress("baseline: loading model and VAD")
    base = Baseline(baseline_mod.load_model(), baseline_mod.load_vad())
    base_fast: list[RunRecord] = []
    for name in wer_names:
        progress(f"baseline: as fast as possible: {name}")
        base_fast.append(await run_baseline(clips[name], base, realtime=False))

    kit_lat, base_lat = Latencies(), Latencies()
    kit_lag: list[float] = []
    base_lag: list[float] = []
    unlocated = drain_timeouts = 0
    for rep in range(plan.repeats):
        for name in latency_names:
            clip: Clip = clips[name]
            tag = f"real time {rep + 1}/{plan.repeats}: {name} ({clip.duration_s:.1f} s)"
            progress(f"kit: {tag}")
            async with LoopLag() as lag:
                record = await run_kit(clip, realtime=True)
            kit_lag += lag.samples_ms
            kit_lat.extend(measure(record))
            progress(f"baseline: {tag}")
            async with LoopLag() as lag:
                record = await run_baseline(clip, base, realtime=True)
            base_lag += lag.samples_ms
            base_lat.extend(measure(record))
            unlocated += record.notes.get("unlocated", 0)
            drain_timeouts += record.notes.get("drain_timed_out", 0)

    kit_fast_wer = [kit_fast[n] for n in wer_names]
    return {
        "quick": plan.name != "full",
        "plan": plan.name,
        "eos_to_final_ms_p50": _ms(percentile(kit_lat.eos_to_final_ms, 50)),
        "eos_to_final_ms_p95": _ms(percentile(kit_lat.eos_to_final_ms, 95)),
        "first_interim_ms_p50": _ms(percentile(kit_lat.first_interim_ms, 50)),
        "first_interim_ms_p95": _ms(percentile(kit_lat.first_interim_ms, 95)),
        "wer": round(_wer(kit_fast_wer), 4),
        "rtf": round(_rtf(kit_fast_wer), 4),
        "loop_lag_ms_p50": _ms(percentile(kit_lag, 50)),
        "loop_lag_ms_p99": _ms(percentile(kit_lag, 99)),
        "max_realtime_streams": streams.max_streams,
        "baseline_eos_to_final_ms_p50": _ms(percentile(base_lat.eos_to_final_ms, 50)),
        "baseline_eos_to_final_ms_p95": _ms(percentile(base_lat.eos_to_final_ms, 95)),
        "eos_to_final_ms_p50_unclipped": _ms(percentile(kit_lat.eos_to_final_unclipped_ms, 50)),
        "eos_to_final_ms_p95_unclipped": _ms(percentile(kit_lat.eos_to_final_unclipped_ms, 95)),
        "baseline_eos_to_final_ms_p50_unclipped": _ms(
            percentile(base_lat.eos_to_final_unclipped_ms, 50)
        ),
        "baseline_eos_to_final_ms_p95_unclipped": _ms(
            percentile(base_lat.eos_to_final_unclipped_ms, 95)
        ),
        "baseline_wer": round(_wer(base_fast), 4),
        "baseline_rtf": round(_rtf(base_fast), 4),
        "baseline_decode_rtf": round(
            sum(r.notes.get("decode_ms", 0) for r in base_fast)
            / 1000
            / sum(r.clip.duration_s for r in base_fast),
            4,
        ),
        "baseline_loop_lag_ms_p50": _ms(percentile(base_lag, 50)),
        "baseline_loop_lag_ms_p99": _ms(percentile(base_lag, 99)),
        "model_load_s": round(load["total_s"], 3),
        "model_load_detail_s": {k: round(v, 3) for k, v in load.items()},
        "import_s": round(import_s, 3),
        "peak_rss_mb": round(startup.peak_rss_mb(), 1),
        "kit_peak_rss_mb": round(kit_rss, 1),
        "counts": {
            "kit_finals": kit_lat.finals,
            "kit_timed": len(kit_lat.eos_to_final_ms),
            "kit_eos_clipped": kit_lat.eos_clipped,
            "kit_with_interim": len(kit_lat.first_interim_ms),
            "baseline_finals": base_lat.finals,
            "baseline_timed": len(base_lat.eos_to_final_ms),
            "baseline_eos_clipped": base_lat.eos_clipped,
            "baseline_unlocated": unlocated,
            "baseline_drain_timeouts": drain_timeouts
            + sum(r.notes.get("drain_timed_out", 0) for r in base_fast),
            "loop_lag_ticks": len(kit_lag),
        },
        "streams": {
            "clip": streams.clip,
            "shared_stt_instance_ok": streams.shared_instance_ok,
            "keep_up_p95_ms": KEEP_UP_P95_MS,
            "by_count": {str(n): v for n, v in streams.by_count.items()},
        },
        "clips": {
            "latency": latency_names,
            "repeats": plan.repeats,
            "wer": wer_names,
            "audio_s_wer": round(sum(clips[n].duration_s for n in wer_names), 2),
        },
        "transcripts": {
            "kit": {n: kit_fast[n].text for n in wer_names},
            "baseline": {r.clip.name: r.text for r in base_fast},
        },
        "samples": {
            "kit_eos_to_final_ms": [round(x, 1) for x in kit_lat.eos_to_final_ms],
            "baseline_eos_to_final_ms": [round(x, 1) for x in base_lat.eos_to_final_ms],
            "kit_eos_clipped": kit_lat.eos_clipped_flags,
            "baseline_eos_clipped": base_lat.eos_clipped_flags,
            "kit_first_interim_ms": [round(x, 1) for x in kit_lat.first_interim_ms],
        },
        "definitions": {
            "speech_frame": (
                f"20 ms frame with RMS > {SPEECH_THRESHOLD_DB:g} dB re the clip's "
                "95th-percentile frame RMS"
            ),
            "eos": "end of the last speech frame in [u.start, u.end + 0.3 s]",
            "eos_to_final": "u.received_at - (first_frame_at + EOS), real-time paced",
            "first_interim": (
                "first interim after the previous final, from the first speech frame "
                "at or after u.start - 0.3 s"
            ),
            "rtf": "sum(run start -> last final) / sum(clip seconds), as fast as possible",
            "baseline_decode_rtf": "time inside faster-whisper transcribe() / clip seconds",
            "unclipped": "the same latency over finals whose EOS is not on the window's edge",
            "loop_lag": "lateness of a 10 ms asyncio ticker during the kit's real-time runs",
        },
        "machine": info,
    }
