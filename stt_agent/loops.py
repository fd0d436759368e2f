"""One rule for touching state owned by an event loop from any thread.

The feed, the progress record and the agent handle belong to the kernel's (or the run's) loop,
but the job thread, decoder threads and handler threads report to them. Calling on the owner's
loop is immediate; from anywhere else the call is queued on it with `call_soon_threadsafe`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

__all__ = ["call_on"]


def call_on(loop: asyncio.AbstractEventLoop | None, fn: Callable[[], object]) -> None:
    """Run `fn` on `loop`: at once when already there (or when there is no owner loop yet),
    otherwise queued thread-safely; dropped when `loop` is closed (nobody is left to see it)."""
    try:
        running: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
    except RuntimeError:
        running = None
    if loop is None or running is loop:
        fn()
    elif not loop.is_closed():
        loop.call_soon_threadsafe(fn)
