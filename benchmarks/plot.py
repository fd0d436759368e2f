"""The EOS -> final latency distributions of kit and baseline, as one PNG."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np

from . import machine

_COLOURS = {"kit": "#1f77b4", "baseline": "#d62728"}


def latency_png(result: dict[str, Any], path: Path) -> Path:
    samples = result["samples"]
    series = {
        "kit": samples["kit_eos_to_final_ms"],
        "baseline": samples["baseline_eos_to_final_ms"],
    }
    fig, ax = plt.subplots(figsize=(9, 4.8), dpi=110)
    rng = np.random.default_rng(0)
    for row, (name, values) in enumerate(series.items()):
        y = len(series) - 1 - row
        if not values:
            ax.text(0, y, f"{name}: no samples", va="center")
            continue
        colour = _COLOURS[name]
        ax.boxplot(
            values,
            positions=[y],
            orientation="horizontal",
            widths=0.5,
            showfliers=False,
            whis=(5, 95),
            patch_artist=True,
            boxprops={"facecolor": colour, "alpha": 0.18, "edgecolor": colour},
            medianprops={"color": colour, "linewidth": 2},
            whiskerprops={"color": colour},
            capprops={"color": colour},
        )
        jitter = rng.uniform(-0.17, 0.17, size=len(values))
        ax.scatter(values, y + jitter, s=14, color=colour, alpha=0.65, zorder=3)
        p50, p95 = np.percentile(values, [50, 95])
        for q, value, dy in (("p50", p50, 0.36), ("p95", p95, -0.36)):
            ax.plot([value, value], [y - 0.3, y + 0.3], color=colour, linewidth=1.5)
            ax.annotate(
                f"{q} {value:.0f} ms",
                (value, y + dy),
                ha="center",
                va="center",
                fontsize=8.5,
                color=colour,
                fontweight="bold",
            )
    for target, label in ((600, "goal p50 600 ms"), (1000, "goal p95 1000 ms")):
        ax.axvline(target, color="grey", linestyle="--", linewidth=0.9)
        ax.text(target, len(series) - 0.45, label, fontsize=8, color="grey", ha="left")
    ax.set_yticks(
        range(len(series)),
        [f"{n}\n(n={len(series[n])})" for n in reversed(series)],
    )
    ax.set_ylim(-0.6, len(series) - 0.35)
    ax.set_xlim(left=0)
    ax.set_xlabel("end of speech (from the audio) -> final utterance in the feed (ms)")
    ax.grid(axis="x", alpha=0.3)
    kit_n = len(series["kit"])
    ax.set_title(
        f"EOS -> final latency, real-time paced, kit vs plain LiveKit baseline "
        f"({result.get('plan')}, {kit_n} kit finals)\n{machine.short(result['machine'])}",
        fontsize=9.5,
    )
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path
