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
    target: float

    def met(self, value: float | None) -> bool:
        if value is None:
            return False
        return (operator.le if self.op == "<=" else operator.ge)(value, self.target)


GOALS = (
    Goal("eos_to_final_ms_p50", "EOS -> final p50 (ms)", "<=", 600),
    Goal("eos_to_final_ms_p95", "EOS -> final p95 (ms)", "<=", 1000),
    Goal("first_interim_ms_p50", "speech onset -> first interim p50 (ms)", "<=", 700),
    Goal("wer", "WER", "<=", 0.06),
    Goal("rtf", "real-time factor", "<=", 0.12),
    Goal("loop_lag_ms_p99", "event-loop lag p99 (ms)", "<=", 20),
    Goal("max_realtime_streams", "real-time streams", ">=", 4),
    Goal("speedup_eos_to_final_p50", "EOS -> final p50, baseline / kit", ">=", 2),
    Goal("speedup_eos_to_final_p95", "EOS -> final p95, baseline / kit", ">=", 2),
)


def _ratio(baseline: float | None, kit: float | None) -> float | None:
    if baseline is None or kit is None or kit <= 0:
        return None
    return round(baseline / kit, 2)


def add_goals(result: dict[str, Any]) -> dict[str, Any]:
    """Adds the derived speed-ups and a `goals` verdict per goal to `result`."""
    for q in ("p50", "p95"):
        result[f"speedup_eos_to_final_{q}"] = _ratio(
            result.get(f"baseline_eos_to_final_ms_{q}"), result.get(f"eos_to_final_ms_{q}")
        )
    result["goals"] = {
        g.key: {"value": result.get(g.key), "target": f"{g.op} {g.target:g}", "met": g.met(v)}
        for g in GOALS
        for v in [result.get(g.key)]
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
    ("EOS -> final p50 (ms)", "eos_to_final_ms_p50", "baseline_eos_to_final_ms_p50", "ms", True),
    ("EOS -> final p95 (ms)", "eos_to_final_ms_p95", "baseline_eos_to_final_ms_p95", "ms", True),
    (
        "  p50, EOS pinned down only (ms)",
        "eos_to_final_ms_p50_unclipped",
        "baseline_eos_to_final_ms_p50_unclipped",
        "ms",
        True,
    ),
    (
        "  p95, EOS pinned down only (ms)",
        "eos_to_final_ms_p95_unclipped",
        "baseline_eos_to_final_ms_p95_unclipped",
        "ms",
        True,
    ),
    ("onset -> first interim p50 (ms)", "first_interim_ms_p50", None, "ms", True),
    ("WER (all clips, fast)", "wer", "baseline_wer", "pct", True),
    ("real-time factor", "rtf", "baseline_rtf", "f", True),
    ("  baseline decode only", None, "baseline_decode_rtf", "f", True),
    ("loop lag p50 (ms)", "loop_lag_ms_p50", "baseline_loop_lag_ms_p50", "f", True),
    ("loop lag p99 (ms)", "loop_lag_ms_p99", "baseline_loop_lag_ms_p99", "f", True),
    ("max real-time streams", "max_realtime_streams", None, "int", False),
    ("model load (s)", "model_load_s", None, "f", True),
    ("import stt_agent (s)", "import_s", None, "f", True),
    ("peak RSS, kit stages (MB)", "kit_peak_rss_mb", None, "g", True),
    ("peak RSS, whole run (MB)", "peak_rss_mb", None, "g", True),
)


def table(result: dict[str, Any]) -> str:
    goals = {g.key: g for g in GOALS}
    verdicts = result.get("goals", {})
    lines = [
        f"stt-agent benchmarks ({result.get('plan')}) on {machine.short(result['machine'])}",
        "",
        f"{'metric':34} {'kit':>9} {'baseline':>9} {'ratio':>7}   goal",
        "-" * 80,
    ]
    for label, key, base_key, kind, lower_better in _ROWS:
        kit = result.get(key) if key else None
        base = result.get(base_key) if base_key else None
        ratio = _ratio(base, kit) if lower_better else None
        goal = ""
        if key in goals:
            g = goals[key]
            met = verdicts.get(key, {}).get("met")
            goal = f"{g.op} {_fmt(g.target, kind)}  {'met' if met else 'NOT MET'}"
        base_s = _fmt(base, kind) if base_key else ""
        ratio_s = f"{ratio:.1f}x" if ratio is not None else ""
        kit_s = _fmt(kit, kind) if key else ""
        lines.append(f"{label:34} {kit_s:>9} {base_s:>9} {ratio_s:>7}   {goal}")
    lines.append("-" * 80)
    for key in ("speedup_eos_to_final_p50", "speedup_eos_to_final_p95"):
        g, v = goals[key], result.get(key)
        verdict = "met" if verdicts.get(key, {}).get("met") else "NOT MET"
        shown = "n/a" if v is None else f"{v:.1f}x"
        lines.append(f"{g.label:44} {shown:>7}   {g.op} {g.target:g}x  {verdict}")
    counts = result.get("counts", {})
    clips = result.get("clips", {})
    lines += [
        "",
        "ratio = baseline / kit (above 1: the kit is better).",
        f"Latency over {counts.get('kit_timed')} kit and {counts.get('baseline_timed')} "
        f"baseline finals ({clips.get('repeats')} pass(es) over "
        f"{len(clips.get('latency', []))} clip(s)); "
        f"{counts.get('kit_with_interim')} kit finals had an interim first.",
        f"EOS fell on the search window's edge for {counts.get('kit_eos_clipped')} kit / "
        f"{counts.get('baseline_eos_clipped')} baseline finals (speech or a noise floor above "
        "-35 dB runs on past it): those latencies are underestimates.",
        _streams_line(result.get("streams", {})),
        f"Took {result.get('duration_s')} s.",
    ]
    return "\n".join(lines)


def _streams_line(streams: dict[str, Any]) -> str:
    shared = streams.get("shared_stt_instance_ok")
    runs = ", ".join(
        f"N={n} {'keeps up' if v['keeps_up'] else 'falls behind'}"
        f" (p95 {_fmt(v['eos_to_final_ms_p95'], 'ms')} ms, {v['runs_complete']}/{n} complete)"
        for n, v in streams.get("by_count", {}).items()
    )
    instance = (
        "one LocalSTT instance serves several sessions"
        if shared
        else "one LocalSTT instance cannot serve several sessions (one per run was used)"
    )
    return f"Streams of {streams.get('clip')}: {instance}; {runs}."
