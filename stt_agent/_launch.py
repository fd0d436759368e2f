"""Imported first by the package's `__init__`, for `python -m stt_agent` and `stt-agent`.

Those import the whole package (LiveKit, PyAV, ipywidgets: about two seconds) before the
command line's `main()` runs and can catch anything. When this process is the command line, a
Ctrl-C during those imports ends with one line too, not a traceback through LiveKit's modules.
In a notebook or any other program, importing this changes nothing. Standard library only, so
it is in place within milliseconds of start-up.
"""

from __future__ import annotations

import signal
import sys
import threading
from pathlib import Path

EXIT_INTERRUPTED = 130  # 128 + SIGINT, what shells report for Ctrl-C


def interrupted_while_importing(signum: int, frame: object) -> None:
    print("stt-agent: interrupted", file=sys.stderr, flush=True)
    raise SystemExit(EXIT_INTERRUPTED)


def _launched_as_command() -> bool:
    # While `python -m` locates a module, argv[0] is "-m" (documented); orig_argv says which.
    orig = getattr(sys, "orig_argv", [])
    as_module = sys.argv[:1] == ["-m"] and "-m" in orig and "stt_agent" in orig
    as_script = bool(sys.argv) and Path(sys.argv[0]).name == "stt-agent"
    return as_module or as_script


if (
    _launched_as_command()
    and threading.current_thread() is threading.main_thread()
    and signal.getsignal(signal.SIGINT) is signal.default_int_handler
):
    # main() puts Python's own handler back before it runs anything
    signal.signal(signal.SIGINT, interrupted_while_importing)
