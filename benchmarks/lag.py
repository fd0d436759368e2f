"""Event-loop lag: how late a 10 ms ticker wakes up while transcription runs on the loop.

In a notebook the kernel's loop is also the one that redraws widgets and answers the user,
so lateness here is what a user would feel as a sluggish notebook.
"""

from __future__ import annotations

import asyncio
import contextlib

TICK_S = 0.010


class LoopLag:
    """`async with LoopLag() as lag:` ... `lag.samples_ms` holds each tick's lateness."""

    def __init__(self) -> None:
        self.samples_ms: list[float] = []
        self._task: asyncio.Task[None] | None = None

    async def _tick(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            due = loop.time() + TICK_S
            await asyncio.sleep(TICK_S)
            self.samples_ms.append(max(0.0, (loop.time() - due) * 1000))

    async def __aenter__(self) -> LoopLag:
        self._task = asyncio.create_task(self._tick(), name="benchmarks.loop_lag")
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
