"""Command line: LiveKit's worker commands (as in the tutorial) plus `transcribe` and `check`.

python -m stt_agent dev                 # register the Transcriber with your LiveKit server
python -m stt_agent transcribe a.wav    # local mode: no server, no keys needed
python -m stt_agent check               # which mode will run, and what is wrong if any
python -m stt_agent server --dev        # the kit's own LiveKit server on this machine

Every failure is one line on stderr and a non-zero exit: 1 for settings and services, 2 for
bad input files, 130 for Ctrl-C; output cut short by its reader (`| head`) ends quietly (141).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import signal
import sys
import warnings
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ._launch import EXIT_INTERRUPTED, interrupted_while_importing
from .config import Secret, Settings, load_settings
from .errors import ConfigError

if TYPE_CHECKING:
    from .audio import FileSource
    from .feed import Utterance

__all__ = ["main"]

LIVEKIT_COMMANDS = {
    "dev": "run the worker in development mode, registered with LIVEKIT_URL",
    "start": "run the worker in production mode",
    "console": "talk to the agent in this terminal (needs a microphone)",
    "connect": "connect the agent to one room (--room NAME)",
    "download-files": "download the plugins' model files ahead of time",
}
# The worker commands that need a LiveKit server; `console` and `download-files` do not.
SERVER_COMMANDS = ("dev", "start", "connect")
EXIT_FAILED = 1
EXIT_BAD_INPUT = 2
EXIT_USAGE = 2  # argparse's own exit for a command line it cannot use
EXIT_BROKEN_PIPE = 141  # 128 + SIGPIPE, what `yes | head -1` reports for `yes`


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m stt_agent",
        description="The LiveKit + AssemblyAI transcriber tutorial, runnable with or without keys.",
        epilog="LiveKit's worker commands take LiveKit's own options: try `dev --help`.",
    )
    # Not `required`: with no command, main() shows the commands rather than argparse's bare
    # "the following arguments are required".
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, help_text in LIVEKIT_COMMANDS.items():
        sub.add_parser(name, help=help_text, add_help=False)

    t = sub.add_parser(
        "transcribe", help="transcribe audio files locally with the same Transcriber"
    )
    t.add_argument("files", nargs="+", metavar="FILE", help="any audio file FFmpeg can decode")
    t.add_argument(
        "--json",
        action="store_true",
        help="one JSON object per utterance; its latency_ms (end of speech to text) is null "
        "without --realtime, since audio read faster than it was spoken has no latency, and "
        "when the engine gives the words no times",
    )
    t.add_argument("--realtime", action="store_true", help="feed audio at real-time speed")
    t.add_argument("--engine", choices=["local", "assemblyai"], help="default: from settings")
    t.add_argument("--env-file", type=Path, help="settings file (default: nearest .env)")

    c = sub.add_parser("check", help="show settings (secrets masked), validate and probe them")
    c.add_argument("--env-file", type=Path, help="settings file (default: nearest .env)")

    from .devserver.command import add_arguments

    s = sub.add_parser("server", help="run the kit's LiveKit development server on this machine")
    add_arguments(s)
    return parser


def main(argv: list[str] | None = None) -> int:
    args_in = sys.argv[1:] if argv is None else argv
    if signal.getsignal(signal.SIGINT) is interrupted_while_importing:
        signal.signal(signal.SIGINT, signal.default_int_handler)  # asyncio.run relies on it
    _tolerant_stdout()
    # PyJWT's note on short HMAC keys, for every token minted: `livekit-server --dev` uses the
    # 6-character "secret" on purpose, and the note would add two lines to every message.
    warnings.filterwarnings("ignore", message="The HMAC key is")
    try:
        parser = _parser()
        if args_in and args_in[0] in LIVEKIT_COMMANDS:
            return _run_livekit_cli(args_in)
        args = parser.parse_args(args_in)
        if args.command is None:
            parser.print_help(sys.stderr)
            return EXIT_USAGE
        if args.command == "transcribe":
            return _transcribe(args)
        if args.command == "server":
            from .devserver.command import run

            return run(args)
        return _check(args)
    except KeyboardInterrupt:
        # One line, not the tracebacks of every task the interrupt passed through.
        logging.disable(logging.CRITICAL)
        print("stt-agent: interrupted", file=sys.stderr, flush=True)
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        _discard_stdout()
        return EXIT_BROKEN_PIPE


# --- the terminal -------------------------------------------------------------------------


def _tolerant_stdout() -> None:
    """Never fail on a character the terminal's encoding lacks (LANG=C, PYTHONIOENCODING=ascii):
    such characters print as '?' instead of raising UnicodeEncodeError mid-transcript."""
    reconfigure = getattr(sys.stdout, "reconfigure", None)
    if reconfigure is not None:
        reconfigure(errors="replace")


def _stdout_takes(text: str) -> bool:
    try:
        text.encode(getattr(sys.stdout, "encoding", None) or "ascii")
    except (UnicodeEncodeError, LookupError):
        return False
    return True


def _discard_stdout() -> None:
    """After the reader went away (`| head -1`): point stdout at /dev/null, so the flush at
    interpreter exit does not raise BrokenPipeError a second time."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError, AttributeError):
        pass


# --- LiveKit's worker commands ------------------------------------------------------------


def _run_livekit_cli(argv: list[str]) -> int:
    """Hand over to LiveKit's own CLI, exactly what `python stt_agent.py dev` runs, once the
    settings were checked: LiveKit would print a traceback for a missing URL and retry an
    unreachable server for minutes."""
    command = argv[0]
    try:
        settings = load_settings()
    except ConfigError as e:
        print(f"stt-agent: {command}: {e}", file=sys.stderr)
        return EXIT_FAILED
    if command in SERVER_COMMANDS and not {"--help", "-h"} & set(argv):
        problem = _preflight(_with_worker_options(settings, argv[1:]))
        if problem and (local := _kit_dev_server(settings, argv[1:])) is not None:
            settings, problem = local, None
            print(
                f"stt-agent: {command}: no LiveKit settings: using the kit's server on "
                f"{settings.livekit_url} (`python -m stt_agent server --dev`)",
                file=sys.stderr,
            )
        if problem:
            print(f"stt-agent: {command}: {problem}", file=sys.stderr)
            return EXIT_FAILED

    from livekit.agents import cli

    from .agent import build_server

    settings.apply_to_environ()  # LiveKit's CLI reads LIVEKIT_* from the environment
    # LiveKit 1.8 marks this rich CLI as deprecated in favour of the `lk` tool; it is still the
    # one the tutorial teaches, so we keep it and silence just that one notice.
    warnings.filterwarnings(
        "ignore", message="the built-in Python CLI is deprecated", category=DeprecationWarning
    )
    sys.argv = [sys.argv[0], *argv]
    cli.run_app(build_server(settings))
    return 0


def _kit_dev_server(settings: Settings, argv: list[str]) -> Settings | None:
    """With no LiveKit settings at all: the kit's server started with `server --dev` on
    this machine, if it runs (the tutorial's two terminals need nothing else)."""
    given = settings.livekit_url or settings.livekit_api_key or settings.livekit_api_secret
    options = {arg.partition("=")[0] for arg in argv}
    if given or options & {"--url", "--api-key", "--api-secret"}:
        return None
    from .devserver.auth import DEV_API_KEY, DEV_API_SECRET
    from .devserver.command import DEFAULT_PORT
    from .probes import is_kit_server

    url = f"ws://127.0.0.1:{DEFAULT_PORT}"
    if not asyncio.run(is_kit_server(url, timeout_s=2.0)):
        return None
    local = replace(
        settings,
        livekit_url=url,
        livekit_api_key=DEV_API_KEY,
        livekit_api_secret=Secret(DEV_API_SECRET),
    )
    return local if _preflight(local) is None else None


def _with_hint(reason: str) -> str:
    return reason.rstrip(". ") + "; `python -m stt_agent check` shows and tests all settings"


def _preflight(settings: Settings) -> str | None:
    """Why a worker cannot register with these settings (one line), or None when it can."""
    from .check import worker_preflight

    reason = asyncio.run(worker_preflight(settings))
    return None if reason is None else _with_hint(reason)


def _with_worker_options(settings: Settings, argv: list[str]) -> Settings:
    """The settings as LiveKit's CLI will see them: its --url, --api-key and --api-secret
    options win over the environment and .env."""
    options = {"--url": "livekit_url", "--api-key": "livekit_api_key"}
    changes: dict[str, Any] = {}
    for i, arg in enumerate(argv):
        name, eq, value = arg.partition("=")
        if name not in (*options, "--api-secret"):
            continue
        if not eq:
            value = argv[i + 1] if i + 1 < len(argv) else ""
        if name == "--api-secret":
            changes["livekit_api_secret"] = Secret(value)
        else:
            changes[options[name]] = value.strip()
    return replace(settings, **changes) if changes else settings


# --- transcribe ---------------------------------------------------------------------------


def _transcribe(args: argparse.Namespace) -> int:
    from .audio import AudioSourceError, FileSource

    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    # Engine failures are reported as one line each below; LiveKit's own error logs would add
    # tracebacks (and client errors can print request headers).
    logging.getLogger("livekit").setLevel(logging.CRITICAL)
    try:
        settings = load_settings(args.env_file)
    except ConfigError as e:
        print(f"stt-agent: {e}", file=sys.stderr)
        return EXIT_BAD_INPUT

    sources: list[FileSource] = []
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


async def _transcribe_sources(
    sources: list[FileSource], settings: Settings, args: argparse.Namespace
) -> int:
    from .audio import AudioSourceError
    from .engines import make_stt
    from .errors import ModelError, StalledError
    from .feed import TranscriptFeed, Utterance
    from .local import EngineError, transcribe

    try:
        stt = make_stt(settings, engine=args.engine)
    except (ModelError, ValueError) as e:
        print(f"stt-agent: {e}", file=sys.stderr)
        return 1

    status = 0
    many = len(sources) > 1
    stdout_gone = False
    try:
        for source in sources:
            feed = TranscriptFeed()
            run = asyncio.ensure_future(transcribe(source, stt=stt, feed=feed))

            def show(
                event: object, name: str = source.name, run: asyncio.Future[Any] = run
            ) -> None:
                nonlocal stdout_gone
                if not (isinstance(event, Utterance) and event.final) or stdout_gone:
                    return
                try:
                    _print_utterance(event, name, as_json=args.json, with_name=many)
                except BrokenPipeError:
                    stdout_gone = True
                    run.cancel()

            feed.subscribe(show)
            try:
                utterances = await run
            except asyncio.CancelledError:
                if not stdout_gone:
                    raise
                break
            except AudioSourceError as e:
                # what was decoded before the break has been printed above, as it came
                print(f"stt-agent: {e}", file=sys.stderr)
                status = EXIT_BAD_INPUT
                continue
            except StalledError as e:
                # this file's stream: the next file gets a stream of its own
                print(f"stt-agent: {source.name}: {e}", file=sys.stderr)
                status = max(status, 1)
                continue
            except EngineError as e:
                print(f"stt-agent: {source.name}: {e}", file=sys.stderr)
                status = max(status, 1)
                break  # a refused key or endpoint fails the same way for every other file
            if not utterances:
                # say so: an empty output and exit 0 would look like a failure to transcribe
                print(f"stt-agent: {source.name}: no speech found", file=sys.stderr)
    finally:
        await stt.aclose()
    if stdout_gone:
        raise BrokenPipeError  # main() ends quietly
    return status


def _print_utterance(u: Utterance, name: str, *, as_json: bool, with_name: bool) -> None:
    start, end, latency = u.start, u.end, u.latency_s
    if as_json:
        record = {
            "file": name,
            "text": u.text,
            "start": None if start is None else round(start, 3),
            "end": None if end is None else round(end, 3),
            "latency_ms": None if latency is None else round(latency * 1000),
            "participant": u.participant,
            "annotations": u.annotations,
        }
        # \u escapes rather than '?' where the terminal cannot show the characters
        _emit(json.dumps(record, ensure_ascii=not _stdout_takes("█é"), default=repr))
        return
    arrow = "→" if _stdout_takes("→") else "->"
    when = f"[{start:6.2f} {arrow} {end:6.2f}] " if start is not None and end is not None else ""
    prefix = f"{Path(name).name} " if with_name else ""
    _emit(f"{prefix}{when}{u.text}")


def _emit(line: str) -> None:
    """One line on stdout; a progress bar on the same terminal is redrawn below it."""
    from tqdm import tqdm

    tqdm.write(line, file=sys.stdout)
    sys.stdout.flush()


# --- check --------------------------------------------------------------------------------


def _check(args: argparse.Namespace) -> int:
    """The one settings check (`check.py`), printed; exit 1 when the configured mode cannot run."""
    from .check import check_settings

    try:
        report = asyncio.run(check_settings(args.env_file))
    except FileNotFoundError as e:  # a named --env-file that is not there: bad input
        print(f"stt-agent: {e}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except ConfigError as e:
        print(f"stt-agent: {e}", file=sys.stderr)
        return EXIT_FAILED
    print(report)
    return 0 if report.ok else EXIT_FAILED
