"""`python -m benchmarks [--quick] [--json] [--write]`: the local mode against a plain LiveKit
baseline.

Prints a kit-vs-baseline table (or, with --json, one JSON object) on stdout and progress on
stderr. The committed full-run results (benchmarks/results/latest.json and latency.png, which
the README quotes) are written only when asked for: `--write` (a full run), or `--out DIR`
for somewhere else. A `--quick` run or a run from the tests never overwrites them.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path

from . import plot, report, suite

RESULTS = Path(__file__).resolve().parent / "results"


def destination(args: argparse.Namespace) -> Path | None:
    """Where this run's results go: `--out`, the committed folder for a full `--write`
    run, or nowhere."""
    if args.out is not None:
        return args.out
    if args.write:
        if args.quick or args.tiny:
            raise SystemExit(
                "benchmarks: --write keeps the README's full-run results; a --quick run "
                "cannot replace them (use --out DIR to keep it elsewhere)"
            )
        return RESULTS
    return None


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    p.add_argument("--quick", action="store_true", help="every clip once, streams 1/4/8")
    p.add_argument("--json", action="store_true", help="one JSON object on stdout")
    p.add_argument("--write", action="store_true", help="write the full run to benchmarks/results/")
    p.add_argument("--out", type=Path, default=None, help="write latest.json and latency.png here")
    # One short clip through every stage, for the test suite.
    p.add_argument("--tiny", action="store_true", help=argparse.SUPPRESS)
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    out = destination(args)
    plan = suite.PLANS["tiny" if args.tiny else "quick" if args.quick else "full"]
    result = report.add_goals(asyncio.run(suite.run(plan)))
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        (out / "latest.json").write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
        png = plot.latency_png(result, out / "latency.png")
        print(f"wrote {out / 'latest.json'} and {png}", file=sys.stderr)
    if args.json:
        print(json.dumps(result))
    else:
        print(report.table(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
