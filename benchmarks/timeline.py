"""`python -m benchmarks.timeline [--out PNG]`: the timeline of one utterance, as a picture.

One recording with pauses inside a sentence is played in real time through the kit; the
picture shows its waveform with the speech found in the audio (`clips.py`), each pause, the
interims, when each caption final arrived and when the turn was delivered, all on the
audio's clock (seconds since the first frame), for the README.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np

from stt_agent.engines import LocalSTT

from .clips import FRAME_S, SAMPLE_RATE, end_of_speech, load_clips
from .runs import RunRecord, run_kit

CLIP = "librispeech_dev_2412-153948-0000.wav"  # "If the reader will excuse me, [pause] I will…"
DEFAULT_OUT = Path(__file__).resolve().parent / "results" / "timeline.png"
_CAPTION, _TURN, _INTERIM, _SPEECH = "#1a7f37", "#cf222e", "#8c959f", "#0969da"


def _first_split_turn(record: RunRecord) -> tuple[float, float]:
    """Audio span of the first turn made of two or more caption finals (else the first)."""
    captions = list(record.captions)
    for turn in record.finals:
        inside = [c for c in captions if c.end is not None and c.end <= (turn.end or 0) + 1e-6]
        captions = captions[len(inside) :]
        if len(inside) >= 2 or turn is record.finals[-1]:
            return turn.start or 0.0, turn.end or 0.0
    return 0.0, record.clip.duration_s


def _speech_end(record: RunRecord, start: float, end: float) -> float:
    """End of speech in the audio (`clips.end_of_speech`), or the engine's own end of speech
    where the audio does not pin it down (the next words follow within 0.3 s)."""
    eos = end_of_speech(record.clip, start, end)
    return end if eos is None or eos.clipped else eos.at_s


def draw(record: RunRecord, out: Path) -> Path:
    assert record.first_frame_at is not None
    t0 = record.first_frame_at
    start, end = _first_split_turn(record)
    turn = next(u for u in record.finals if (u.start or 0) >= start - 1e-6)
    lo, hi = max(0.0, start - 0.3), max(end, turn.received_at - t0) + 0.6
    fig, (wave_ax, events_ax) = plt.subplots(
        2, 1, figsize=(10, 4.6), dpi=110, sharex=True, height_ratios=(2, 3)
    )
    pcm = record.clip.pcm.astype(np.float64) / 32768.0
    seconds = np.arange(pcm.size) / SAMPLE_RATE
    shown = (seconds >= lo) & (seconds <= hi)
    wave_ax.plot(seconds[shown], pcm[shown], color="#57606a", linewidth=0.4)
    speech = record.clip.speech
    for i in np.flatnonzero(speech):
        at = i * FRAME_S
        if lo <= at <= hi:
            wave_ax.axvspan(at, at + FRAME_S, color=_SPEECH, alpha=0.12, linewidth=0)
    wave_ax.set_yticks([])
    wave_ax.set_title("One utterance: speech (blue), pauses, caption finals and the turn's end")

    rows = {"interims": 2, "caption finals": 1, "turn": 0}
    for u in record.events:
        at = u.received_at - t0
        if not u.final and lo <= at <= hi:
            events_ax.plot(at, rows["interims"], "|", color=_INTERIM, markersize=10)
    for c in record.captions:
        at = c.received_at - t0
        if not (lo <= at <= hi) or c.end is None or c.start is None:
            continue
        eos = _speech_end(record, c.start, c.end)
        events_ax.plot(at, rows["caption finals"], "D", color=_CAPTION)
        label = c.text if len(c.text) < 30 else c.text[:28] + "…"
        for ax in (wave_ax, events_ax):
            ax.axvline(eos, color=_CAPTION, linestyle=":", linewidth=1)
        events_ax.annotate(
            "",
            xy=(at, rows["caption finals"] - 0.25),
            xytext=(eos, rows["caption finals"] - 0.25),
            arrowprops={"arrowstyle": "->", "color": _CAPTION},
        )
        label = f"“{label}”\n+{(at - eos) * 1000:.0f} ms after its end of speech"
        events_ax.text(eos, rows["caption finals"] + 0.2, label, fontsize=7, color=_CAPTION)
    at = turn.received_at - t0
    events_ax.plot(at, rows["turn"], "s", color=_TURN)
    last = _speech_end(record, turn.start or 0.0, turn.end or 0.0)
    events_ax.annotate(
        "",
        xy=(at, rows["turn"] + 0.25),
        xytext=(last, rows["turn"] + 0.25),
        arrowprops={"arrowstyle": "->", "color": _TURN},
    )
    note = f"turn ends (VAD silence): delivered to the handlers, +{(at - last) * 1000:.0f} ms"
    events_ax.text(at, rows["turn"] - 0.45, note, fontsize=7, color=_TURN, ha="right")
    events_ax.set_yticks(list(rows.values()), list(rows))
    events_ax.set_ylim(-0.8, 2.6)
    events_ax.set_xlim(lo, hi)
    events_ax.set_xlabel("seconds since the first audio frame (real time)")
    events_ax.grid(axis="x", alpha=0.3)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out)
    plt.close(fig)
    return out


async def _record(name: str) -> RunRecord:
    (clip,) = load_clips([name])
    stt = LocalSTT()
    stt.prewarm()
    return await run_kit(clip, realtime=True, stt=stt)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.timeline", description=__doc__)
    p.add_argument("--clip", default=CLIP, help="a clip of the scored set")
    p.add_argument("--out", type=Path, default=DEFAULT_OUT, help="the PNG to write")
    args = p.parse_args(argv)
    record = asyncio.run(_record(args.clip))
    print(f"wrote {draw(record, args.out)}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
