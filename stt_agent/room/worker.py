"""Room mode in the background of a notebook: LiveKit's `AgentServer` as a task in the kernel.

Unlike `livekit.agents.jupyter.run_app`, nothing here blocks the cell, installs signal
handlers, replaces the event loop or strips the root logger's handlers:

* the `AgentServer` runs as a task on the kernel's running loop, with jobs on a thread executor
  so they share the kernel's memory (one copy of the model);
* its logs go to the handle's log (shown by `StatusView`, see `stt_agent.room.logs`) and
  logging and the process environment are put back when it stops;
* a key/secret the server refuses ends it with a clear error, not an endless reconnect loop.

One agent at a time (`stt_agent.handle`): starting a worker stops the agent running until then.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from typing import Any

from livekit.agents import AgentServer, JobContext, JobExecutorType

from ..config import Settings, load_settings
from ..feed import TranscriptFeed
from ..handle import STOP_TIMEOUT_S, AgentHandle, new_handle
from ..scrub import describe
from .guard import require_livekit
from .logs import WorkerLogs
from .multi_user import transcribe_room
from .worker_load import DEFAULT_MAX_STREAMS, LOAD_THRESHOLD, StreamLoad

__all__ = ["RoomWorker", "start_agent"]

# AgentServer.run exports its credentials to os.environ; these are put back afterwards.
_WORKER_ENV = ("LIVEKIT_URL", "LIVEKIT_API_KEY", "LIVEKIT_API_SECRET", "LIVEKIT_WORKER_TOKEN")


async def start_agent(
    settings: Settings | None = None,
    *,
    feed: TranscriptFeed | None = None,
    agent_name: str | None = None,
) -> AgentHandle:
    """Register the Transcriber as a LiveKit worker from this kernel; returns at once.

    Raises `ConfigError` when the LIVEKIT_* settings are missing or unusable. One agent at a
    time: the agent running until now (local or room) is stopped first, and its status says
    it was replaced.
    """
    settings = settings or load_settings()
    require_livekit(settings)
    handle = await new_handle("room", feed)
    worker = RoomWorker(
        handle, settings, agent_name if agent_name is not None else settings.agent_name
    )
    handle.attach(asyncio.create_task(worker.run(), name="stt_agent.worker"), worker.stop)
    return handle


class RoomWorker:
    """One AgentServer on the kernel loop, reporting to `handle`; made by `start_agent`."""

    def __init__(self, handle: AgentHandle, settings: Settings, agent_name: str) -> None:
        self.handle = handle
        self.settings = settings
        self._loop = asyncio.get_running_loop()  # the kernel's: `fail` may come from a job thread
        self._closing: asyncio.Future[None] | None = None
        # Jobs run on threads here, so every stream of this worker is counted in `load`.
        self.load = StreamLoad(settings.max_streams or DEFAULT_MAX_STREAMS[settings.engine])
        self.server = AgentServer(
            ws_url=settings.livekit_url,
            api_key=settings.livekit_api_key,
            api_secret=settings.livekit_api_secret.reveal(),
            job_executor_type=JobExecutorType.THREAD,
            host="127.0.0.1",
            port=0,
            load_fnc=self.load,
            load_threshold=LOAD_THRESHOLD,  # dev mode would never say "full"
        )
        self.server.rtc_session(self._entrypoint, agent_name=agent_name)
        self.server.on("worker_registered", self._on_registered)
        self._logs = WorkerLogs(
            handle, secrets=[settings.livekit_api_secret.reveal()], watch=self._watch
        )
        self._saved_env = {k: os.environ.get(k) for k in _WORKER_ENV}

    async def run(self) -> None:
        self._logs.capture()
        self.handle.report(state="starting", detail=f"connecting to {self.settings.livekit_url}")
        try:
            await self.server.run(devmode=True)
        except asyncio.CancelledError:
            raise
        except Exception as e:
            if self.handle.status.state != "error":
                self.handle.fail(e, secrets=[self.settings.livekit_api_secret.reveal()])
        finally:
            self._restore()

    async def stop(self) -> None:
        """Close the server once (`fail` and the handle's stop may both ask): LiveKit's second
        `aclose` would re-raise the cancellation its first one left behind."""
        if self._closing is None:
            self._closing = asyncio.ensure_future(self._close())
        await asyncio.shield(self._closing)

    async def _close(self) -> None:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.server.aclose(), STOP_TIMEOUT_S - 0.5)
        self._restore()

    def fail(self, message: str) -> None:
        """Give up on a configuration LiveKit will never accept: no reconnect storm."""
        if self.handle.status.state == "error":
            return
        self.handle.fail(message)
        asyncio.run_coroutine_threadsafe(self.stop(), self._loop)

    def _watch(self, record: logging.LogRecord) -> None:
        """LiveKit reports a refused key and an unreachable server only in its logs."""
        status = getattr(getattr(record, "error", None), "status", None)
        if status in (401, 403):
            self.fail(
                f"the LiveKit server at {self.settings.livekit_url} refused the API key/"
                f"secret (HTTP {status}). Check that LIVEKIT_API_KEY and LIVEKIT_API_SECRET "
                "are one pair from the same project (`python -m stt_agent check` tests them)."
            )
        elif record.levelno >= logging.WARNING and "failed to connect" in record.getMessage():
            self.handle.report(detail=f"cannot reach {self.settings.livekit_url}, retrying…")

    def _on_registered(self, worker_id: str, server_info: Any) -> None:
        version = getattr(server_info, "version", "")
        self.handle.report(
            state="registered",
            worker_id=worker_id,
            detail=f"waiting for a job (server {version})".replace(" ()", ""),
            error=None,
        )

    async def _entrypoint(self, ctx: JobContext) -> None:
        """Runs on the job's own thread and loop; reports back through the handle."""
        handle, room_name = self.handle, ctx.room.name
        handle.report(state="in_job", room=room_name, participants=(), detail="connecting")
        try:
            await transcribe_room(
                ctx,
                self.settings,
                feed=handle.feed,
                handlers=handle.handlers,
                on_change=lambda who: handle.report(participants=who),
                load=self.load,
            )
            handle.report(detail="transcribing")
            ctx.add_shutdown_callback(self._job_ended)
        except Exception as e:
            # LiveKit reports a thread job as succeeded whatever happened; say it here.
            handle.report(
                state="registered",
                room=None,
                participants=(),
                error=f"job in {room_name}: {describe(e)}",
            )
            raise

    async def _job_ended(self, *_: Any) -> None:
        self.handle.report(state="registered", room=None, participants=(), detail="job ended")

    def _restore(self) -> None:
        self._logs.restore()
        for key, value in self._saved_env.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
