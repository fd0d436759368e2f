"""Local mode in the background of a notebook: `start_local` runs a `LocalRun` as a task.

The cell returns at once with a handle (`stt_agent.handle`); the run goes on in the kernel's
loop, and its words reach `handle.feed` (and any `TranscriptView`) as they are spoken. One
agent at a time: starting a run stops the agent running until then.
"""

from __future__ import annotations

import asyncio
from typing import Any

from livekit.agents import stt as lk_stt

from .audio import as_source
from .config import Settings, load_settings
from .engines import LocalSTT, make_stt
from .feed import TranscriptFeed
from .handle import AgentHandle, new_handle
from .local import LocalRun
from .progress_bar import follow, wants_bar

__all__ = ["start_local"]


async def start_local(
    source: object,
    *,
    feed: TranscriptFeed | None = None,
    realtime: bool = True,
    stt: lk_stt.STT[Any] | None = None,
    engine: str | None = None,
    settings: Settings | None = None,
    sample_rate: int = 16_000,
) -> AgentHandle:
    """Transcribe a file, array or widget in the background; returns at once.

    The STT is `stt` if given, else `make_stt(settings, engine=engine)` (closed at the end).
    One agent at a time: the agent running until now (local or room) is stopped first, and
    its status says it was replaced.

    `handle = await stt_agent.start_local("talk.wav")`, then
    `stt_agent.TranscriptView(handle.feed)` shows the words as they are spoken.
    """
    # Arguments that cannot work raise here, before the running agent is replaced.
    audio = as_source(source, realtime=realtime, sample_rate=sample_rate)
    recogniser = stt if stt is not None else make_stt(settings or load_settings(), engine=engine)
    owns_recogniser = stt is None  # close what we opened (HTTP sessions), never the caller's
    handle = await new_handle("local", feed)
    run = LocalRun(source=audio, stt=recogniser, feed=handle.feed, handlers=handle.handlers)
    handle.progress = run.progress
    # Created here, in the cell that started the run, so a notebook shows it under that cell.
    bar = follow(run.progress, audio.name) if wants_bar(run.progress) else None
    started = asyncio.Event()

    async def main() -> None:
        try:
            if isinstance(recogniser, LocalSTT) and not recogniser.is_loaded:
                handle.report(detail=f"loading the speech model ({recogniser.model})…")
                await asyncio.to_thread(recogniser.prewarm)
            starter = asyncio.create_task(started.wait())
            runner = asyncio.ensure_future(run.run(started=started))
            await asyncio.wait({starter, runner}, return_when=asyncio.FIRST_COMPLETED)
            starter.cancel()
            if started.is_set():
                handle.report(state="running", detail=f"transcribing {audio.name}")
            handle.result = await runner
            handle.report(state="finished", detail=f"{len(handle.result)} utterances")
        except asyncio.CancelledError:
            raise
        except Exception as e:
            handle.fail(e)
        finally:
            if bar is not None:
                bar.cancel()
            if owns_recogniser:
                await recogniser.aclose()

    handle.attach(asyncio.create_task(main(), name="stt_agent.local"), run.request_stop)
    return handle
