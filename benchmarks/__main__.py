"""`python -m benchmarks [--quick] [--json]`: the local mode against a plain LiveKit baseline.

Prints a kit-vs-baseline table (or, with --json, one JSON object) on stdout, progress on
stderr, and writes benchmarks/results/latest.json and benchmarks/results/latency.png.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path

from . import plot, report, suite

RESULTS = Path(__file__).resolve().parent / "results"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="3 clips, fewer streams (<3 min)")
    parser.add_argument("--json", action="store_true", help="one JSON object on stdout")
    # One short clip through every stage, for the test suite.
    parser.add_argument("--tiny", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, default=RESULTS, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    plan = suite.PLANS["tiny" if args.tiny else "quick" if args.quick else "full"]
    result = report.add_goals(asyncio.run(suite.run(plan)))
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "latest.json").write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    png = plot.latency_png(result, args.out / "latency.png")
    print(f"wrote {args.out / 'latest.json'} and {png}", file=sys.stderr)
    if args.json:
        print(json.dumps(result))
    else:
        print(report.table(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
