"""`python -m benchmarks.long_files [--minutes 10 60 120] [--json]`: hour-long recordings.

Makes 16 kHz mono MP3s of N minutes at run time from the shared recordings (each clip
followed by a pause of 0.5-3 s, seeded), transcribes each with `python -m stt_agent
transcribe --json` in its own process, and reports per length: wall time, real-time factor,
peak RSS of that process (`wait4`), how far into the file the last utterance ends, the exit
status, and the WER against the concatenated references. The 10-minute file is the
reference for memory: a flat-memory kit keeps the longer files' peaks within a few percent.

Writes benchmarks/results/long_files.json only when asked (`--write`).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import av
import numpy as np

from .scoring import corpus_wer, references
from .speech import speech_dir as default_speech_dir

RESULTS = Path(__file__).resolve().parent / "results"
RATE = 16_000


def make_recording(path: Path, minutes: float, speech_dir: Path | None = None) -> tuple[float, str]:
    """Write an MP3 of `minutes`; returns its length in seconds and its reference text."""
    speech_dir = speech_dir or default_speech_dir()
    refs = references(speech_dir)
    clips = {name: _read(speech_dir / name) for name in sorted(refs)}
    rng = np.random.default_rng(2026)
    target = int(minutes * 60 * RATE)
    written = 0
    said: list[str] = []
    with av.open(str(path), "w", format="mp3") as out:
        stream = out.add_stream("libmp3lame", rate=RATE, layout="mono")
        stream.bit_rate = 48_000
        names = list(clips)
        while written < target:
            name = names[len(said) % len(names)]
            pause = np.zeros(int(rng.uniform(0.5, 3.0) * RATE), np.int16)
            pcm = np.concatenate([clips[name], pause])[: target - written]
            said.append(refs[name])
            frame = av.AudioFrame.from_ndarray(pcm.reshape(1, -1), format="s16", layout="mono")
            frame.sample_rate = RATE
            for packet in stream.encode(frame):
                out.mux(packet)
            written += pcm.size
        for packet in stream.encode(None):
            out.mux(packet)
    return written / RATE, " ".join(said)


def _read(path: Path) -> np.ndarray:
    resampler = av.AudioResampler(format="s16", layout="mono", rate=RATE)
    with av.open(str(path)) as f:
        chunks = [
            out.to_ndarray().reshape(-1)
            for frame in f.decode(audio=0)
            for out in resampler.resample(frame)
        ]
    return np.concatenate(chunks)


def transcribe(path: Path) -> dict[str, object]:
    """Run the CLI on `path` in a child process; wall time and that child's own peak RSS."""
    started = time.perf_counter()
    child = subprocess.Popen(
        [sys.executable, "-m", "stt_agent", "transcribe", "--json", str(path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={**os.environ, "STT_AGENT_ENGINE": "local"},
    )
    stdout, stderr = child.communicate()
    wall = time.perf_counter() - started
    # communicate() has reaped the child; its rusage is in RUSAGE_CHILDREN only in aggregate,
    # so each length runs in a fresh interpreter that runs exactly one child (see main()).
    lines = [json.loads(line) for line in stdout.decode().splitlines() if line.strip()]
    return {
        "exit": child.returncode,
        "wall_s": round(wall, 1),
        "utterances": len(lines),
        "last_end_s": max((u["end"] or 0.0 for u in lines), default=0.0),
        "text": " ".join(u["text"] for u in lines),
        "stderr": stderr.decode(errors="replace").strip()[-500:],
    }


def measure(minutes: float, workdir: Path) -> dict[str, object]:
    path = workdir / f"speech_{minutes:g}min.mp3"
    length, reference = make_recording(path, minutes)
    before = _children_maxrss_mb()
    result = transcribe(path)
    peak = _children_maxrss_mb()
    text = str(result.pop("text"))
    return {
        "minutes": minutes,
        "file_s": round(length, 1),
        "file_mb": round(path.stat().st_size / 1e6, 1),
        **result,
        "rtf": round(float(result["wall_s"]) / length, 3),  # type: ignore[arg-type]
        # ru_maxrss of children is the largest child so far: one child per process (main()).
        "peak_rss_mb": round(peak, 1) if peak > before else None,
        "missing_tail_s": round(max(0.0, length - float(result["last_end_s"])), 1),  # type: ignore[arg-type]
        "wer": round(corpus_wer([reference], [text]), 4),
    }


def _children_maxrss_mb() -> float:
    import resource

    return resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.long_files", description=__doc__)
    parser.add_argument("--minutes", type=float, nargs="+", default=[10, 60, 120])
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--write", action="store_true", help="save results/long_files.json")
    parser.add_argument("--one", type=float, help=argparse.SUPPRESS)  # a single length
    args = parser.parse_args(argv)
    if args.one is not None:
        with tempfile.TemporaryDirectory() as tmp:
            print(json.dumps(measure(args.one, Path(tmp))))
        return 0
    rows = []
    for minutes in args.minutes:
        print(f"long files: {minutes:g} min…", file=sys.stderr, flush=True)
        # A fresh interpreter per length, so each peak RSS is that length's alone.
        out = subprocess.run(
            [sys.executable, "-m", "benchmarks.long_files", "--one", str(minutes)],
            capture_output=True,
            text=True,
            check=True,
        )
        rows.append(json.loads(out.stdout))
    reference = rows[0]["peak_rss_mb"] if rows else None
    for row in rows:
        if reference and row["peak_rss_mb"]:
            row["peak_vs_first"] = round(row["peak_rss_mb"] / reference, 3)
    result = {"long_files": rows}
    if args.write:
        RESULTS.mkdir(exist_ok=True)
        (RESULTS / "long_files.json").write_text(json.dumps(result, indent=2) + "\n")
    if args.json:
        print(json.dumps(result))
    else:
        print(table(rows))
    return 0


def table(rows: list[dict[str, object]]) -> str:
    head = "| file | wall | RTF | peak RSS | vs first | last utterance ends | exit | WER |"
    lines = [head, "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for r in rows:
        lines.append(
            f"| {r['minutes']:g} min MP3 | {r['wall_s']} s | {r['rtf']} | {r['peak_rss_mb']} MB "
            f"| {r.get('peak_vs_first', '–')} | {r['missing_tail_s']} s before the end "
            f"| {r['exit']} | {float(r['wer']):.1%} |"  # type: ignore[arg-type]
        )
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
