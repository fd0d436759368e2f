"""The whole benchmark, stage by stage: start-up, accuracy and speed, streams, latency.

Stages that the other engineers' jobs could disturb least come first (fresh-interpreter
timings), the kit's memory is read before the baseline is loaded, and the real-time latency
runs alternate kit and baseline clip by clip so background load hits both alike. Latency
runs use the scored recordings (`speech.py`: the team's set when it is beside the clone, else
the kit's shipped samples) and noisy 48 kHz stereo versions of them made at run time
(`noisy.py`).
"""

from __future__ import annotations

import logging
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from stt_agent.engines import LocalSTT

from . import baseline as baseline_mod
from . import machine, startup
from .clips import SPEECH_THRESHOLD_DB, TINY_CLIP, load_clips
from .lag import LoopLag
from .latency import Latencies, measure, percentile
from .noisy import SNR_DB, noisy_clip
from .runs import Baseline, RunRecord, run_baseline, run_kit
from .scoring import corpus_wer, mid_sentence_cuts, normalise, references, whisper_normalise
from .speech import SHARED_DIR, speech_dir
from .streams import KEEP_UP_BEHIND_MS, max_realtime_streams

Progress = Callable[[str], None]

STREAM_CLIP = "jfk_inaugural_1961.wav"  # four turns in 11 s: several finals per stream
# A cut counts as "at a short pause" when the speaker paused less than this there.
SHORT_PAUSE_S = 0.5


@dataclass(frozen=True)
class Plan:
    name: str
    clips: tuple[str, ...] | None  # None: every clip (WER and latency)
    repeats: int  # real-time passes over the clips
    noisy_baseline: bool  # the baseline also runs the noisy versions in real time
    stream_clip: str
    stream_counts: tuple[int, ...]
    import_repeats: int


PLANS = {
    "full": Plan("full", None, 2, True, STREAM_CLIP, (1, 2, 4, 6, 8, 10, 12), 3),
    # Every clip once: fewer would leave a handful of finals whose end of speech is pinned
    # down, too few for a p95.
    "quick": Plan("quick", None, 1, False, STREAM_CLIP, (1, 4, 8), 3),
    # For the test suite: one short clip through every stage.
    "tiny": Plan("tiny", (TINY_CLIP,), 1, False, TINY_CLIP, (1,), 1),
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


def _wer(records: list[RunRecord], normaliser: Callable[[str], str] = whisper_normalise) -> float:
    return corpus_wer([r.clip.reference for r in records], [r.text for r in records], normaliser)


def _rtf(records: list[RunRecord]) -> float:
    return sum(r.processing_s for r in records) / sum(r.clip.duration_s for r in records)


def _ms(value: float | None) -> float | None:
    return None if value is None else round(value, 1)


def _rate(part: int, whole: int) -> float | None:
    return round(part / whole, 4) if whole else None


async def run(plan: Plan, progress: Progress | None = None) -> dict[str, Any]:
    progress = progress or _stderr_progress()
    began = time.monotonic()
    warnings = _WarningCounter()
    livekit_log = logging.getLogger("livekit")
    saved_propagate = livekit_log.propagate
    livekit_log.addHandler(warnings)
    livekit_log.propagate = False
    try:
        with tempfile.TemporaryDirectory(prefix="stt-agent-bench-") as tmp:
            result = await _run(plan, progress, Path(tmp))
    finally:
        livekit_log.removeHandler(warnings)
        livekit_log.propagate = saved_propagate
    result["livekit_warnings"] = dict(warnings.counts.most_common(8))
    result["duration_s"] = round(time.monotonic() - began, 1)
    return result


def _latency_keys(prefix: str, lat: Latencies) -> dict[str, Any]:
    pinned = lat.eos_to_final_pinned_ms
    captions = lat.eos_to_caption_pinned_ms
    return {
        f"{prefix}eos_to_caption_final_ms_p50": _ms(percentile(captions, 50)),
        f"{prefix}eos_to_caption_final_ms_p95": _ms(percentile(captions, 95)),
        # A turn's final is the turn delivered: `eos_to_turn` is the older `eos_to_final`.
        f"{prefix}eos_to_turn_ms_p50": _ms(percentile(pinned, 50)),
        f"{prefix}eos_to_turn_ms_p95": _ms(percentile(pinned, 95)),
        f"{prefix}eos_to_final_ms_p50": _ms(percentile(pinned, 50)),
        f"{prefix}eos_to_final_ms_p95": _ms(percentile(pinned, 95)),
        f"{prefix}eos_to_final_ms_p50_all": _ms(percentile(lat.eos_to_final_ms, 50)),
        f"{prefix}eos_to_final_ms_p95_all": _ms(percentile(lat.eos_to_final_ms, 95)),
        f"{prefix}mid_sentence_cut_rate": _rate(lat.cuts, lat.finals),
        f"{prefix}short_pause_cut_rate": _rate(
            sum(p < SHORT_PAUSE_S for p in lat.cut_pauses_s), lat.finals
        ),
    }


async def _run(plan: Plan, progress: Progress, tmp: Path) -> dict[str, Any]:
    info = machine.describe()
    progress(f"startup: import time (fresh interpreter, x{plan.import_repeats})")
    import_s = startup.import_seconds(plan.import_repeats)
    progress("startup: model load time (fresh interpreter)")
    load = startup.model_load_seconds()

    names = list(plan.clips or references())
    clean = {c.name: c for c in load_clips(dict.fromkeys([*names, plan.stream_clip]))}
    progress(f"clips: making noisy 48 kHz stereo versions ({SNR_DB:g} dB SNR, pink noise)")
    noisy = {n: await noisy_clip(clean[n], tmp, seed=i) for i, n in enumerate(names)}

    progress("kit: loading model")
    LocalSTT().prewarm()
    kit_fast: dict[str, RunRecord] = {}
    for clip in [*(clean[n] for n in names), *noisy.values()]:
        progress(f"kit: as fast as possible: {clip.name}")
        kit_fast[clip.name] = await run_kit(clip, realtime=False)

    streams = await max_realtime_streams(
        clean[plan.stream_clip], list(plan.stream_counts), progress=progress
    )
    kit_rss = startup.peak_rss_mb()

    progress("baseline: loading model and VAD")
    base = Baseline(baseline_mod.load_model(), baseline_mod.load_vad())
    base_fast: list[RunRecord] = []
    for name in names:
        progress(f"baseline: as fast as possible: {name}")
        base_fast.append(await run_baseline(clean[name], base, realtime=False))

    sets = {"clean": Latencies(), "noisy": Latencies()}
    base_sets = {"clean": Latencies(), "noisy": Latencies()}
    kit_lag: list[float] = []
    base_lag: list[float] = []
    unlocated = drain_timeouts = 0
    for rep in range(plan.repeats):
        for name in names:
            for kind, clip in (("clean", clean[name]), ("noisy", noisy[name])):
                tag = f"real time {rep + 1}/{plan.repeats}: {clip.name} ({clip.duration_s:.1f} s)"
                progress(f"kit: {tag}")
                async with LoopLag() as lag:
                    record = await run_kit(clip, realtime=True)
                kit_lag += lag.samples_ms
                sets[kind].extend(measure(record))
                if kind == "noisy" and not plan.noisy_baseline:
                    continue
                progress(f"baseline: {tag}")
                async with LoopLag() as lag:
                    record = await run_baseline(clip, base, realtime=True)
                base_lag += lag.samples_ms
                base_sets[kind].extend(measure(record))
                unlocated += record.notes.get("unlocated", 0)
                drain_timeouts += record.notes.get("drain_timed_out", 0)

    kit_lat, base_lat = Latencies(), Latencies()
    for lat in sets.values():
        kit_lat.extend(lat)
    for lat in base_sets.values():
        base_lat.extend(lat)
    kit_clean = [kit_fast[n] for n in names]
    kit_noisy = [kit_fast[c.name] for c in noisy.values()]
    # Files crunched as fast as possible end turns by the VAD alone: the turn ends the kit
    # made before Whisper's end-of-sentence confidence was used, on the same clips.
    vad_only = [
        mid_sentence_cuts(r.clip.base_name, r.clip.reference, [u.text for u in r.finals])
        for r in [*kit_clean, *kit_noisy]
    ]
    vad_only_finals = sum(len(c.mid_sentence) for c in vad_only)
    return {
        "quick": plan.name != "full",
        "plan": plan.name,
        **_latency_keys("", kit_lat),
        "eos_to_final_left_out": kit_lat.finals - len(kit_lat.eos_to_final_pinned_ms),
        "mid_sentence_cut_rate_vad_only": _rate(sum(c.count for c in vad_only), vad_only_finals),
        "first_interim_ms_p50": _ms(percentile(kit_lat.first_interim_ms, 50)),
        "first_interim_ms_p95": _ms(percentile(kit_lat.first_interim_ms, 95)),
        "interim_revision_rate": _rate(kit_lat.interim_revisions, kit_lat.interim_updates),
        "wer": round(_wer(kit_clean), 4),
        "wer_project_normaliser": round(_wer(kit_clean, normalise), 4),
        "wer_noisy": round(_wer(kit_noisy), 4),
        "rtf": round(_rtf(kit_clean), 4),
        "loop_lag_ms_p50": _ms(percentile(kit_lag, 50)),
        "loop_lag_ms_p99": _ms(percentile(kit_lag, 99)),
        "max_realtime_streams": streams.max_streams,
        "memory_per_stream_mb": streams.memory_per_stream_mb,
        **_latency_keys("baseline_", base_lat),
        "baseline_eos_to_final_left_out": base_lat.finals - len(base_lat.eos_to_final_pinned_ms),
        "baseline_wer": round(_wer(base_fast), 4),
        "baseline_wer_project_normaliser": round(_wer(base_fast, normalise), 4),
        "baseline_rtf": round(_rtf(base_fast), 4),
        "baseline_decode_rtf": round(
            sum(r.notes.get("decode_ms", 0) for r in base_fast)
            / 1000
            / sum(r.clip.duration_s for r in base_fast),
            4,
        ),
        "baseline_loop_lag_ms_p50": _ms(percentile(base_lag, 50)),
        "baseline_loop_lag_ms_p99": _ms(percentile(base_lag, 99)),
        "by_set": {
            f"{who}{kind}": _latency_keys("", lat)
            for who, group in (("", sets), ("baseline_", base_sets))
            for kind, lat in group.items()
            if lat.finals
        },
        "model_load_s": round(load["total_s"], 3),
        "model_load_detail_s": {k: round(v, 3) for k, v in load.items()},
        "import_s": round(import_s, 3),
        "peak_rss_mb": round(startup.peak_rss_mb(), 1),
        "kit_peak_rss_mb": round(kit_rss, 1),
        "counts": {
            "kit_captions": kit_lat.captions,
            "kit_captions_pinned": len(kit_lat.eos_to_caption_pinned_ms),
            "baseline_captions": base_lat.captions,
            "baseline_captions_pinned": len(base_lat.eos_to_caption_pinned_ms),
            "kit_finals": kit_lat.finals,
            "kit_timed": len(kit_lat.eos_to_final_ms),
            "kit_pinned": len(kit_lat.eos_to_final_pinned_ms),
            "kit_eos_clipped": kit_lat.eos_clipped,
            "kit_untimed": kit_lat.untimed,
            "kit_with_interim": len(kit_lat.first_interim_ms),
            "kit_interim_updates": kit_lat.interim_updates,
            "kit_interim_revisions": kit_lat.interim_revisions,
            "kit_cuts": kit_lat.cuts,
            "kit_cut_pauses_s": [round(p, 2) for p in kit_lat.cut_pauses_s],
            "kit_cut_where": kit_lat.cut_where,
            "baseline_finals": base_lat.finals,
            "baseline_timed": len(base_lat.eos_to_final_ms),
            "baseline_pinned": len(base_lat.eos_to_final_pinned_ms),
            "baseline_eos_clipped": base_lat.eos_clipped,
            "baseline_cuts": base_lat.cuts,
            "baseline_cut_pauses_s": [round(p, 2) for p in base_lat.cut_pauses_s],
            "baseline_unlocated": unlocated,
            "baseline_drain_timeouts": drain_timeouts
            + sum(r.notes.get("drain_timed_out", 0) for r in base_fast),
            "loop_lag_ticks": len(kit_lag),
        },
        "streams": {
            "clip": streams.clip,
            "shared_stt_instance": True,
            "keep_up_behind_ms": KEEP_UP_BEHIND_MS,
            "by_count": {str(n): v for n, v in streams.by_count.items()},
        },
        "clips": {
            "set": "shared" if speech_dir() == SHARED_DIR else "shipped samples",
            "names": names,
            "repeats": plan.repeats,
            "noisy": f"48 kHz stereo, pink noise at {SNR_DB:g} dB SNR",
            "noisy_baseline": plan.noisy_baseline,
            "audio_s_wer": round(sum(clean[n].duration_s for n in names), 2),
        },
        "transcripts": {
            "kit": {n: kit_fast[n].text for n in names},
            "kit_noisy": {c.name: kit_fast[c.name].text for c in noisy.values()},
            "baseline": {r.clip.name: r.text for r in base_fast},
        },
        "samples": {
            "kit_eos_to_final_ms": [round(x, 1) for x in kit_lat.eos_to_final_ms],
            "baseline_eos_to_final_ms": [round(x, 1) for x in base_lat.eos_to_final_ms],
            "kit_eos_clipped": kit_lat.eos_clipped_flags,
            "baseline_eos_clipped": base_lat.eos_clipped_flags,
            "kit_first_interim_ms": [round(x, 1) for x in kit_lat.first_interim_ms],
            "kit_eos_to_caption_final_ms": [round(x, 1) for x in kit_lat.eos_to_caption_ms],
            "baseline_eos_to_caption_final_ms": [round(x, 1) for x in base_lat.eos_to_caption_ms],
            "kit_caption_clipped": kit_lat.caption_clipped_flags,
            "baseline_caption_clipped": base_lat.caption_clipped_flags,
        },
        "definitions": {
            "speech_frame": (
                f"20 ms frame with RMS > {SPEECH_THRESHOLD_DB:g} dB re the clip's "
                "95th-percentile frame RMS and > the clip's noise floor + 10 dB"
            ),
            "eos": "end of the last speech frame in [u.start, u.end + 0.3 s]",
            "eos_to_final": (
                "u.received_at - (first_frame_at + EOS), real-time paced; the headline p50/p95 "
                "count only finals whose EOS is pinned down (not on the search window's edge); "
                "*_all counts every timed final"
            ),
            "eos_to_caption_final": (
                "c.received_at - (first_frame_at + EOS) for every caption final c (the final "
                "transcript of the speech before a pause, shown before its turn ends), EOS "
                "searched in [c.start, c.end + 0.3 s]; pinned-down EOS only"
            ),
            "eos_to_turn": "eos_to_final: end of speech -> the turn delivered to the handlers",
            "first_interim": (
                "first interim after the previous final, from the first speech frame "
                "at or after max(u.start - 0.3 s, the previous final's end)"
            ),
            "interim_revision_rate": (
                "interim updates (and finals replacing interims) that change words already "
                "shown, over all such updates"
            ),
            "wer": "corpus WER under Whisper's English text normaliser (whisper-normalizer)",
            "mid_sentence_cut_rate": (
                "real-time finals after which the reference's sentence goes on (no . ! ? ; : "
                "there), over all real-time finals"
            ),
            "mid_sentence_cut_rate_vad_only": (
                "the same over the as-fast-as-possible runs, whose turns end by the VAD's "
                "silence alone (the kit's turn ends before end-of-sentence confidence)"
            ),
            "short_pause_cut_rate": (
                f"the same, only where the speaker paused less than {SHORT_PAUSE_S:g} s"
            ),
            "rtf": "sum(run start -> last final) / sum(clip seconds), as fast as possible",
            "baseline_decode_rtf": "time inside faster-whisper transcribe() / clip seconds",
            "loop_lag": "lateness of a 10 ms asyncio ticker during the kit's real-time runs",
            "max_realtime_streams": (
                "largest N of simultaneous real-time runs on one model where every run is "
                f"complete and no final comes more than {KEEP_UP_BEHIND_MS:g} ms later than "
                "a lone stream's median"
            ),
        },
        "machine": info,
    }
