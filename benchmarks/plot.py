"""The EOS -> final latency distributions of kit and baseline, as one PNG."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib
import matplotlib.ticker

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np

from . import machine

_COLOURS = {"kit": "#1f77b4", "baseline": "#d62728"}


def latency_png(result: dict[str, Any], path: Path) -> Path:
    samples = result["samples"]
    series = {
        name: (
            np.asarray(samples[f"{name}_eos_to_final_ms"], dtype=float),
            np.asarray(samples.get(f"{name}_eos_clipped") or [], dtype=bool),
        )
        for name in ("kit", "baseline")
    }
    fig, ax = plt.subplots(figsize=(9, 4.8), dpi=110)
    rng = np.random.default_rng(0)
    for row, (name, (values, clipped)) in enumerate(series.items()):
        y = len(series) - 1 - row
        if values.size == 0:
            ax.text(10, y, f"{name}: no samples", va="center")
            continue
        if clipped.size != values.size:
            clipped = np.zeros(values.size, dtype=bool)
        colour = _COLOURS[name]
        # Box = interquartile range; p50 and p95 are drawn and labelled explicitly, over the
        # finals whose end of speech is pinned down (the headline).
        pinned = values[~clipped] if (~clipped).any() else values
        q1, p50, q3, p95 = np.percentile(pinned, [25, 50, 75, 95])
        ax.add_patch(
            plt.Rectangle((q1, y - 0.25), q3 - q1, 0.5, facecolor=colour, alpha=0.15, lw=0)
        )
        y_dots = y + rng.uniform(-0.17, 0.17, size=values.size)
        ax.scatter(values[~clipped], y_dots[~clipped], s=16, color=colour, alpha=0.7, zorder=3)
        ax.scatter(
            values[clipped],
            y_dots[clipped],
            s=16,
            facecolors="none",
            edgecolors=colour,
            alpha=0.8,
            zorder=3,
        )
        for q, value, dy in (("p50", p50, 0.38), ("p95", p95, -0.38)):
            ax.plot([value, value], [y - 0.3, y + 0.3], color=colour, linewidth=2)
            ax.annotate(
                f"{q} {value:.0f} ms",
                (value, y + dy),
                ha="center",
                va="center",
                fontsize=8.5,
                color=colour,
                fontweight="bold",
            )
    top = len(series) - 0.4
    for target, label, dy in ((300, "goal p50 300 ms", 0.07), (600, "goal p95 600 ms", 0.2)):
        ax.axvline(target, color="grey", linestyle="--", linewidth=0.9)
        ax.text(target * 1.02, top - dy, label, fontsize=8, color="grey", ha="left")
    ax.set_yticks(
        range(len(series)),
        [f"{n}\n(n={series[n][0].size})" for n in reversed(series)],
    )
    ax.set_ylim(-0.6, top)
    # Log scale: the kit's few hundred ms and the baseline's seconds-long outliers both read.
    everything = np.concatenate([v for v, _ in series.values()])
    positive = everything[everything > 0]
    low = max(10.0, float(positive.min()) * 0.7) if positive.size else 10.0
    high = max(2000.0, float(everything.max()) * 1.3) if everything.size else 2000.0
    ax.set_xscale("log")
    ax.set_xlim(low, high)
    ticks = (20, 50, 100, 200, 500, 1000, 2000, 5000, 10000, 20000, 50000)
    ax.set_xticks([t for t in ticks if low <= t <= high])
    ax.xaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda v, _: f"{v:g}"))
    ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    ax.set_xlabel(
        "end of speech (from the audio) -> final utterance in the feed (ms, log scale)\n"
        "dots: finals, clean and noisy clips (hollow: EOS on the search window's edge, an "
        "underestimate, left out of p50/p95); band: interquartile range",
        fontsize=8.5,
    )
    ax.grid(axis="x", alpha=0.3)
    ax.set_title(
        f"EOS -> final latency, real-time paced: kit vs plain LiveKit baseline "
        f"({result.get('plan')} run)\n{machine.short(result['machine'])}",
        fontsize=9.5,
    )
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path
