"""Goals, and the kit-vs-baseline table printed on stdout."""

from __future__ import annotations

import operator
from dataclasses import dataclass
from typing import Any

from . import machine


@dataclass(frozen=True)
class Goal:
    key: str
    label: str
    op: str  # "<=" or ">="
    target: float | str  # a number, or the key of another result to compare with

    def threshold(self, result: dict[str, Any]) -> float | None:
        return result.get(self.target) if isinstance(self.target, str) else self.target

    def met(self, result: dict[str, Any]) -> bool:
        value, target = result.get(self.key), self.threshold(result)
        if value is None or target is None:
            return False
        return (operator.le if self.op == "<=" else operator.ge)(value, target)


GOALS = (
    # Issue 21: captions at hosted speed, turns no later than before (553 ms p50).
    Goal("eos_to_caption_final_ms_p50", "EOS -> caption final p50, pinned (ms)", "<=", 250),
    Goal("eos_to_caption_final_ms_p95", "EOS -> caption final p95, pinned (ms)", "<=", 500),
    Goal("eos_to_turn_ms_p50", "EOS -> turn delivered p50, pinned (ms)", "<=", 553),
    Goal("speedup_eos_to_caption_final_p50", "EOS -> caption final p50, baseline / kit", ">=", 4),
    Goal("first_interim_ms_p50", "speech onset -> first interim p50 (ms)", "<=", 600),
    Goal("wer", "WER, Whisper normaliser", "<=", 0.06),
    Goal("rtf", "real-time factor", "<=", 0.10),
    Goal("loop_lag_ms_p99", "event-loop lag p99 (ms)", "<=", 20),
    Goal("max_realtime_streams", "real-time streams on one model", ">=", 8),
    Goal(
        "mid_sentence_cut_rate",
        "turns cut mid-sentence (vs VAD-only turn ends)",
        "<=",
        "mid_sentence_cut_rate_vad_only",
    ),
)


def _ratio(baseline: float | None, kit: float | None) -> float | None:
    if baseline is None or kit is None or kit <= 0:
        return None
    return round(baseline / kit, 2)


def add_goals(result: dict[str, Any]) -> dict[str, Any]:
    """Adds the derived speed-ups and a `goals` verdict per goal to `result`."""
    for metric in ("eos_to_final", "eos_to_caption_final"):
        for q in ("p50", "p95"):
            result[f"speedup_{metric}_{q}"] = _ratio(
                result.get(f"baseline_{metric}_ms_{q}"), result.get(f"{metric}_ms_{q}")
            )
    result["goals"] = {
        g.key: {
            "value": result.get(g.key),
            "target": f"{g.op} {g.threshold(result)}",
            "met": g.met(result),
        }
        for g in GOALS
    }
    return result


def _fmt(value: Any, kind: str) -> str:
    if value is None:
        return "n/a"
    if kind == "pct":
        return f"{value * 100:.1f} %"
    if kind == "ms":
        return f"{value:.0f}"
    if kind == "int":
        return str(value)
    return f"{value:.3g}" if kind == "g" else f"{value:.2f}"


# (label, kit key, baseline key, format, lower is better); a None key leaves its cell empty
_ROWS = (
    (
        "EOS -> caption final p50, pinned (ms)",
        "eos_to_caption_final_ms_p50",
        "baseline_eos_to_caption_final_ms_p50",
    ),
    (
        "EOS -> caption final p95, pinned (ms)",
        "eos_to_caption_final_ms_p95",
        "baseline_eos_to_caption_final_ms_p95",
    ),
    ("EOS -> turn p50, pinned (ms)", "eos_to_turn_ms_p50", "baseline_eos_to_turn_ms_p50"),
    ("EOS -> turn p95, pinned (ms)", "eos_to_turn_ms_p95", "baseline_eos_to_turn_ms_p95"),
    ("  p50, every turn (ms)", "eos_to_final_ms_p50_all", "baseline_eos_to_final_ms_p50_all"),
    ("  p95, every turn (ms)", "eos_to_final_ms_p95_all", "baseline_eos_to_final_ms_p95_all"),
    ("onset -> first interim p50 (ms)", "first_interim_ms_p50", None),
    ("onset -> first interim p95 (ms)", "first_interim_ms_p95", None),
    ("interim revisions", "interim_revision_rate", None),
    ("turns cut mid-sentence", "mid_sentence_cut_rate", "baseline_mid_sentence_cut_rate"),
    ("  VAD-only turn ends", "mid_sentence_cut_rate_vad_only", None),
    ("  at pauses < 0.5 s", "short_pause_cut_rate", "baseline_short_pause_cut_rate"),
    ("WER, Whisper normaliser", "wer", "baseline_wer"),
    ("  project normaliser", "wer_project_normaliser", "baseline_wer_project_normaliser"),
    ("  noisy 48 kHz stereo", "wer_noisy", None),
    ("real-time factor", "rtf", "baseline_rtf"),
    ("  baseline decode only", None, "baseline_decode_rtf"),
    ("loop lag p50 (ms)", "loop_lag_ms_p50", "baseline_loop_lag_ms_p50"),
    ("loop lag p99 (ms)", "loop_lag_ms_p99", "baseline_loop_lag_ms_p99"),
    ("max real-time streams", "max_realtime_streams", None),
    ("memory per extra stream (MB)", "memory_per_stream_mb", None),
    ("model load (s)", "model_load_s", None),
    ("import stt_agent (s)", "import_s", None),
    ("peak RSS, kit stages (MB)", "kit_peak_rss_mb", None),
    ("peak RSS, whole run (MB)", "peak_rss_mb", None),
)
_KINDS = {
    "loop_lag": "f",
    "_ms_": "ms",
    "rate": "pct",
    "wer": "pct",
    "streams": "int",
    "_mb": "g",
}


def _kind(key: str) -> str:
    return next((kind for part, kind in _KINDS.items() if part in key), "f")


def table(result: dict[str, Any]) -> str:
    goals = {g.key: g for g in GOALS}
    verdicts = result.get("goals", {})
    lines = [
        f"stt-agent benchmarks ({result.get('plan')}) on {machine.short(result['machine'])}",
        "",
        f"{'metric':34} {'kit':>9} {'baseline':>9} {'ratio':>7}   goal",
        "-" * 84,
    ]
    for label, key, base_key in _ROWS:
        kind = _kind(key or base_key or "")
        kit = result.get(key) if key else None
        base = result.get(base_key) if base_key else None
        lower_better = kind in ("ms", "pct", "f")
        ratio = _ratio(base, kit) if lower_better and kind != "pct" else None
        goal = ""
        if key in goals:
            g = goals[key]
            met = verdicts.get(key, {}).get("met")
            goal = f"{g.op} {_fmt(g.threshold(result), kind)}  {'met' if met else 'NOT MET'}"
        base_s = _fmt(base, kind) if base_key else ""
        ratio_s = f"{ratio:.1f}x" if ratio is not None else ""
        kit_s = _fmt(kit, kind) if key else ""
        lines.append(f"{label:34} {kit_s:>9} {base_s:>9} {ratio_s:>7}   {goal}")
    lines.append("-" * 84)
    g = goals["speedup_eos_to_caption_final_p50"]
    v = result.get(g.key)
    verdict = "met" if verdicts.get(g.key, {}).get("met") else "NOT MET"
    shown = "n/a" if v is None else f"{v:.1f}x"
    lines.append(f"{g.label:44} {shown:>7}   {g.op} {g.target:g}x  {verdict}")
    counts = result.get("counts", {})
    clips = result.get("clips", {})
    lines += [
        "",
        "ratio = baseline / kit (above 1: the kit is better).",
        f"Latency over {counts.get('kit_captions_pinned')} kit / "
        f"{counts.get('baseline_captions_pinned')} baseline caption finals of "
        f"{counts.get('kit_captions')} / {counts.get('baseline_captions')}, and "
        f"{counts.get('kit_pinned')} kit / {counts.get('baseline_pinned')} baseline "
        f"turns of {counts.get('kit_finals')} / {counts.get('baseline_finals')} "
        f"({result.get('eos_to_final_left_out')} kit turns left out), whose end of speech is "
        f"pinned down in the audio; "
        f"{clips.get('repeats')} pass(es) over {len(clips.get('names', []))} clip(s)"
        f" ({clips.get('set', 'shared')} set)"
        f" and their noisy 48 kHz stereo versions ({clips.get('noisy')}; the baseline "
        f"{'too' if clips.get('noisy_baseline') else 'on the clean clips only'}).",
        f"Cuts mid-sentence: kit {counts.get('kit_cuts')} (pauses there: "
        f"{counts.get('kit_cut_pauses_s')} s), baseline {counts.get('baseline_cuts')}.",
        _streams_line(result.get("streams", {})),
        f"Took {result.get('duration_s')} s.",
    ]
    return "\n".join(lines)


def _streams_line(streams: dict[str, Any]) -> str:
    runs = ", ".join(
        f"N={n} {'keeps up' if v['keeps_up'] else 'falls behind'}"
        f" (p95 {_fmt(v['eos_to_final_ms_p95'], 'ms')} ms, worst {_fmt(v['behind_ms_max'], 'ms')}"
        f" ms behind a lone stream, {v['runs_complete']}/{n} complete, {v['peak_rss_mb']} MB)"
        for n, v in streams.get("by_count", {}).items()
    )
    return f"Streams of {streams.get('clip')} on one model: {runs}."
