"""`run_sync`: the result of a coroutine from synchronous code, even inside a running loop.

In a notebook, `await stt_agent.transcribe_file(path)` is the way: the kernel's loop is already
running. But a plain function, a script pasted into a cell, or a learner who forgot `await`
has only a coroutine object, and `asyncio.run` refuses to start a second loop inside the
kernel's ("asyncio.run() cannot be called from a running event loop").

Outside any loop (a script, `python -c`), `run_sync` is `asyncio.run`. Inside a running loop
it applies `nest-asyncio` to that loop, then runs the coroutine to completion on it: the
kernel's other tasks (a running agent, widget updates) keep going meanwhile. nest-asyncio
patches asyncio for the whole process, so it is applied here, when a synchronous caller asks
for it inside a loop, and never when the kit is imported.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import TypeVar

__all__ = ["run_sync"]

T = TypeVar("T")


async def _await(awaitable: Awaitable[T]) -> T:
    return await awaitable


def run_sync(awaitable: Awaitable[T]) -> T:
    """Run `awaitable` to completion and return its result, from synchronous code.

    stt_agent.run_sync(stt_agent.transcribe_file(stt_agent.samples.path("jfk")))
    """
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(_await(awaitable))
    # Imported only now: it patches asyncio process-wide. It ships no type information.
    import nest_asyncio  # type: ignore[import-untyped]  # no type information shipped

    nest_asyncio.apply(loop)
    return loop.run_until_complete(_await(awaitable))
