"""A progress bar for long work: a widget in a notebook, text on a terminal (tqdm decides).

It follows a run's `RunProgress` (seconds of audio recognised out of the file's length) from
a small task; the bar is created by the caller, in the cell or command that started the work,
so in a notebook it appears under that cell and nowhere else.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
from typing import Any

from .progress import RunProgress

__all__ = ["follow", "in_notebook", "wants_bar"]

# Shorter files are done before a bar would tell anyone anything.
NOTEBOOK_MIN_S = 60.0


def in_notebook() -> bool:
    """Running in a Jupyter kernel (importing ipywidgets alone does not count)."""
    ipython = sys.modules.get("IPython")
    shell = ipython.get_ipython() if ipython is not None else None
    return getattr(shell, "kernel", None) is not None


def wants_bar(progress: RunProgress, *, terminal: bool = False) -> bool:
    """A bar for files longer than a minute in a notebook; on a terminal (the CLI) always."""
    if progress.total_s is None:
        return False
    if terminal:
        return sys.stderr.isatty()
    return in_notebook() and progress.total_s > NOTEBOOK_MIN_S


def follow(progress: RunProgress, name: str) -> asyncio.Task[None]:
    """Show a bar for `progress` now; the returned task keeps it current until cancelled."""
    from tqdm.auto import tqdm

    total = round(progress.total_s or 0.0, 1)
    short = os.path.basename(name) or name
    bar: Any = tqdm(
        total=total,
        desc=short if len(short) <= 40 else short[:39] + "…",
        unit="s",
        unit_scale=False,
        bar_format="{desc}: {percentage:3.0f}%|{bar}| {n:.0f}/{total:.0f} s of audio [{elapsed}]",
        file=sys.stderr,
        leave=in_notebook(),  # a terminal keeps the transcript, not a finished bar
    )

    async def keep_current() -> None:
        try:
            while True:
                bar.n = min(total, round(progress.recognised_s, 1))
                bar.refresh()
                await progress.changed(timeout=0.5)
                await asyncio.sleep(0.25)  # at most a few redraws a second
        finally:
            if progress.source_done:
                bar.n = total
            with contextlib.suppress(Exception):
                bar.close()

    return asyncio.create_task(keep_current(), name="stt_agent.progress_bar")
