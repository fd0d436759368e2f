"""Command line: LiveKit's worker commands (as in the tutorial) plus `transcribe` and `check`.

python -m stt_agent dev                 # register the Transcriber with your LiveKit server
python -m stt_agent transcribe a.wav    # local mode: no server, no keys needed
python -m stt_agent check               # which mode will run, and what is wrong if any
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
import warnings
from pathlib import Path

from .config import load_settings

__all__ = ["main"]

LIVEKIT_COMMANDS = {
    "dev": "run the worker in development mode (hot reload), registered with LIVEKIT_URL",
    "start": "run the worker in production mode",
    "console": "talk to the agent in this terminal (needs a microphone)",
    "connect": "connect the agent to one room (--room NAME)",
    "download-files": "download the plugins' model files ahead of time",
}
EXIT_BAD_INPUT = 2


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m stt_agent",
        description="The LiveKit + AssemblyAI transcriber tutorial, runnable with or without keys.",
        epilog="LiveKit's worker commands take LiveKit's own options: try `dev --help`.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, help_text in LIVEKIT_COMMANDS.items():
        sub.add_parser(name, help=help_text, add_help=False)

    t = sub.add_parser(
        "transcribe", help="transcribe audio files locally with the same Transcriber"
    )
    t.add_argument("files", nargs="+", metavar="FILE", help="any audio file FFmpeg can decode")
    t.add_argument("--json", action="store_true", help="one JSON object per utterance")
    t.add_argument("--realtime", action="store_true", help="feed audio at real-time speed")
    t.add_argument("--engine", choices=["local", "assemblyai"], help="default: from settings")
    t.add_argument("--env-file", type=Path, help="settings file (default: nearest .env)")

    c = sub.add_parser("check", help="show settings (secrets masked), validate and probe them")
    c.add_argument("--env-file", type=Path, help="settings file (default: nearest .env)")
    return parser


def main(argv: list[str] | None = None) -> int:
    args_in = sys.argv[1:] if argv is None else argv
    parser = _parser()
    if args_in and args_in[0] in LIVEKIT_COMMANDS:
        return _run_livekit_cli(args_in)
    args = parser.parse_args(args_in)
    if args.command == "transcribe":
        return _transcribe(args)
    return _check(args)


def _run_livekit_cli(argv: list[str]) -> int:
    """Hand over to LiveKit's own CLI, exactly what `python stt_agent.py dev` runs."""
    from livekit.agents import cli

    from .agent import build_server

    settings = load_settings()
    settings.apply_to_environ()  # LiveKit's CLI reads LIVEKIT_* from the environment
    # LiveKit 1.8 marks this rich CLI as deprecated in favour of the `lk` tool; it is still the
    # one the tutorial teaches, so we keep it and silence just that one notice.
    warnings.filterwarnings(
        "ignore", message="the built-in Python CLI is deprecated", category=DeprecationWarning
    )
    sys.argv = [sys.argv[0], *argv]
    cli.run_app(build_server(settings))
    return 0


# --- transcribe ---------------------------------------------------------------------------


def _transcribe(args: argparse.Namespace) -> int:
    from .audio import AudioSourceError, FileSource

    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    # Engine failures are reported as one line each below; LiveKit's own error logs would add
    # tracebacks (and client errors can print request headers).
    logging.getLogger("livekit").setLevel(logging.CRITICAL)
    try:
        settings = load_settings(args.env_file)
    except FileNotFoundError as e:
        print(f"stt-agent: {e}", file=sys.stderr)
        return EXIT_BAD_INPUT

    sources = []
    status = 0
    for name in args.files:
        try:
            sources.append(FileSource(name, realtime=args.realtime))
        except AudioSourceError as e:
            print(f"stt-agent: {e}", file=sys.stderr)
            status = EXIT_BAD_INPUT
    if sources:
        status = max(status, asyncio.run(_transcribe_sources(sources, settings, args)))
    return status


async def _transcribe_sources(sources: list, settings: object, args: argparse.Namespace) -> int:
    from .audio import AudioSourceError
    from .engines import ModelError, make_stt
    from .feed import TranscriptFeed, Utterance
    from .local import EngineError, transcribe

    try:
        stt = make_stt(settings, engine=args.engine)  # type: ignore[arg-type]
    except (ModelError, ValueError) as e:
        print(f"stt-agent: {e}", file=sys.stderr)
        return 1

    status = 0
    many = len(sources) > 1
    for source in sources:
        feed = TranscriptFeed()

        def show(event: object, name: str = source.name) -> None:
            if isinstance(event, Utterance) and event.final:
                _print_utterance(event, name, as_json=args.json, with_name=many)

        feed.subscribe(show)
        try:
            await transcribe(source, stt=stt, feed=feed)
        except AudioSourceError as e:
            print(f"stt-agent: {e}", file=sys.stderr)
            status = EXIT_BAD_INPUT
        except EngineError as e:
            print(f"stt-agent: {source.name}: {e}", file=sys.stderr)
            status = max(status, 1)
            break  # the engine will fail the same way for every other file
    await stt.aclose()
    return status


def _print_utterance(u: object, name: str, *, as_json: bool, with_name: bool) -> None:
    start, end, latency = u.start, u.end, u.latency_s  # type: ignore[attr-defined]
    if as_json:
        record = {
            "file": name,
            "text": u.text,  # type: ignore[attr-defined]
            "start": None if start is None else round(start, 3),
            "end": None if end is None else round(end, 3),
            "latency_ms": None if latency is None else round(latency * 1000),
            "participant": u.participant,  # type: ignore[attr-defined]
            "annotations": u.annotations,  # type: ignore[attr-defined]
        }
        print(json.dumps(record, ensure_ascii=False), flush=True)
        return
    when = f"[{start:6.2f} → {end:6.2f}] " if start is not None and end is not None else ""
    prefix = f"{Path(name).name} " if with_name else ""
    print(f"{prefix}{when}{u.text}", flush=True)  # type: ignore[attr-defined]


# --- check --------------------------------------------------------------------------------


def _check(args: argparse.Namespace) -> int:
    from .probes import probe_assemblyai, probe_livekit

    try:
        settings = load_settings(args.env_file)
    except FileNotFoundError as e:
        print(f"stt-agent: {e}", file=sys.stderr)
        return EXIT_BAD_INPUT

    where = settings.env_file or "no .env found (environment variables only)"
    print(f"Settings from: {where}")
    width = max(len(var) for var, _, _ in settings.as_table())
    for var, shown, source in settings.as_table():
        print(f"  {var:<{width}}  {shown or '-':<40}  ({source})")

    problems = settings.problems()
    print()
    if problems:
        print("Problems:")
        for p in problems:
            print(f"  ✗ {p.variable}: {p.message}\n      fix: {p.fix}")
    else:
        print("No problems found in the settings.")

    async def probes() -> list:
        checks = []
        if settings.has_livekit:
            checks.append(probe_livekit(settings))
        if settings.assemblyai_api_key:
            checks.append(probe_assemblyai(settings))
        return list(await asyncio.gather(*checks))

    results = asyncio.run(probes())
    if results:
        print("\nProbes:")
        for r in results:
            print(f"  {r}")
    print(f"\n{settings.describe_mode()}")
    failed = any(p.blocking for p in problems) or any(not r.ok for r in results)
    if failed:
        print("The configured mode cannot run: fix the problems or failed probes above.")
    return 1 if failed else 0
