"""Run the Transcriber in the background of a notebook: `start_agent` (room) and `start_local`.

Unlike `livekit.agents.jupyter.run_app`, nothing here blocks the cell, installs signal
handlers, replaces the event loop or strips the root logger's handlers:

* room mode runs LiveKit's `AgentServer` as a task on the kernel's running loop, with jobs on a
  thread executor so they share the kernel's memory (one copy of the model);
* local mode runs an `AgentSession` fed from a file, array or widget as a task on that loop;
* LiveKit's worker logs go to the handle's log (shown by `StatusView`) instead of whatever
  cell happens to be running, and logging is restored when the agent stops.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from livekit.agents import AgentServer, JobContext, JobExecutorType
from livekit.agents import stt as lk_stt

from ..audio import as_source
from ..config import Settings, load_settings
from ..engines import LocalSTT, make_stt
from ..errors import ConfigError
from ..feed import TranscriptFeed, Utterance
from ..handlers import Handler, TurnHandlers
from ..local import LocalRun
from ..progress import RunProgress
from ..progress_bar import follow, wants_bar
from ..scrub import describe, scrub
from .multi_user import transcribe_room
from .worker_load import DEFAULT_MAX_STREAMS, LOAD_THRESHOLD, StreamLoad

__all__ = ["AgentHandle", "AgentStatus", "start_agent", "start_local"]

State = Literal["starting", "registered", "in_job", "running", "finished", "stopped", "error"]
_STOP_TIMEOUT_S = 4.0
_LOG_HISTORY = 300
_current: AgentHandle | None = None


@dataclass(frozen=True)
class AgentStatus:
    state: State
    detail: str = ""
    worker_id: str | None = None
    room: str | None = None
    participants: tuple[str, ...] = ()
    error: str | None = None
    since: float = field(default_factory=time.time)

    def __str__(self) -> str:
        parts = [self.state]
        if self.worker_id:
            parts.append(f"worker {self.worker_id}")
        if self.room:
            parts.append(f"room {self.room}")
        if self.participants:
            parts.append("participants: " + ", ".join(self.participants))
        if self.error:
            parts.append(f"error: {self.error}")
        elif self.detail:
            parts.append(self.detail)
        return " · ".join(parts)


class AgentHandle:
    """What `start_agent` / `start_local` return: status, feed, turn handlers, and stop()."""

    def __init__(self, mode: Literal["room", "local"], feed: TranscriptFeed) -> None:
        self.mode = mode
        self.feed = feed
        self.handlers = TurnHandlers()
        self.logs: deque[str] = deque(maxlen=_LOG_HISTORY)
        self._status = AgentStatus("starting")
        self._status_listeners: list[Callable[[AgentStatus], Any]] = []
        self._loop = asyncio.get_running_loop()
        self._ready = asyncio.Event()
        self._ended = asyncio.Event()
        self._task: asyncio.Task[Any] | None = None
        self._stopper: Callable[[], Any] | None = None
        self.result: list[Utterance] | None = None
        # Local runs: audio fed, recognised and turns delivered so far (see stt_agent.progress).
        self.progress: RunProgress | None = None
        feed.bind(self._loop)

    # --- status (may be set from any thread; listeners run on the kernel loop) -----------

    @property
    def status(self) -> AgentStatus:
        return self._status

    def on_status(self, fn: Callable[[AgentStatus], Any]) -> Callable[[], None]:
        self._status_listeners.append(fn)
        return lambda: self._status_listeners.remove(fn) if fn in self._status_listeners else None

    def _set_status(self, **changes: Any) -> None:
        def apply() -> None:
            if self._status.state in ("stopped",) and changes.get("state") not in (None, "stopped"):
                return  # a late job event must not resurrect a stopped agent
            self._status = replace(self._status, since=time.time(), **changes)
            if self._status.state in ("registered", "running", "in_job", "error", "finished"):
                self._ready.set()
            if self._status.state in ("finished", "stopped", "error"):
                self._ended.set()
            for fn in list(self._status_listeners):
                try:
                    fn(self._status)
                except Exception:
                    logging.getLogger("stt_agent").exception("status listener failed")

        self._on_loop(apply)

    def _on_loop(self, fn: Callable[[], None]) -> None:
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is self._loop:
            fn()
        elif not self._loop.is_closed():
            self._loop.call_soon_threadsafe(fn)

    def _log(self, line: str) -> None:
        self._on_loop(lambda: self.logs.append(line))

    # --- turn handlers ------------------------------------------------------------------

    def on_turn(self, fn: Handler | None = None, *, name: str | None = None) -> Any:
        """Add (or replace, by name) a turn handler; works as `@handle.on_turn` too."""
        if fn is None:
            return lambda f: self.handlers.add(f, name=name)
        return self.handlers.add(fn, name=name)

    def remove_turn_handler(self, fn_or_name: Handler | str) -> None:
        self.handlers.remove(fn_or_name)

    @property
    def turn_handlers(self) -> list[str]:
        return self.handlers.names

    # --- lifecycle ----------------------------------------------------------------------

    async def wait_ready(self, timeout: float | None = 30.0) -> AgentStatus:
        """Until registered (room) or transcribing (local); raises if it failed instead."""
        await asyncio.wait_for(self._ready.wait(), timeout)
        if self._status.state == "error":
            raise RuntimeError(self._status.error)
        return self._status

    async def done(self) -> list[Utterance] | None:
        """Local: until the source is finished and its last utterance delivered."""
        await self._ended.wait()
        if self._task is not None:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
        return self.result

    async def stop(self) -> None:
        """Stop within a few seconds: a bounded drain, then close."""
        global _current
        deadline = time.monotonic() + _STOP_TIMEOUT_S
        if self._stopper is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._stopper(), _STOP_TIMEOUT_S)
        if self._task is not None and not self._task.done():
            # Let it drain what it already heard (bounded), and only then cancel it: a
            # cancel in the middle of closing the session would leave its streams behind.
            with contextlib.suppress(TimeoutError, asyncio.CancelledError, Exception):
                remaining = max(0.1, deadline - time.monotonic())
                await asyncio.wait_for(asyncio.shield(self._task), remaining)
        self.handlers.close()  # abandon handlers still running; their threads are daemons
        if self._task is not None and not self._task.done():
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await asyncio.wait_for(self._task, 1.0)
        if self._status.state != "error":
            self._set_status(state="stopped", detail="")
        self._ended.set()
        if _current is self:
            _current = None

    @property
    def running(self) -> bool:
        return self._status.state in ("starting", "registered", "in_job", "running")

    def __repr__(self) -> str:
        return f"<AgentHandle {self.mode}: {self._status}>"


async def _replace_current(handle: AgentHandle) -> None:
    global _current
    previous, _current = _current, handle
    if previous is not None and previous.running:
        await previous.stop()


# --- local mode --------------------------------------------------------------------------


async def start_local(
    source: object,
    *,
    feed: TranscriptFeed | None = None,
    realtime: bool = True,
    stt: lk_stt.STT | None = None,
    engine: str | None = None,
    settings: Settings | None = None,
    sample_rate: int = 16_000,
) -> AgentHandle:
    """Transcribe a file, array or widget in the background; returns at once.

    The STT is `stt` if given, else `make_stt(settings, engine=engine)` (closed at the end).

    `handle = await stt_agent.start_local("talk.wav")`, then
    `stt_agent.TranscriptView(handle.feed)` shows the words as they are spoken.
    """
    audio = as_source(source, realtime=realtime, sample_rate=sample_rate)
    handle = AgentHandle("local", feed if feed is not None else TranscriptFeed())
    await _replace_current(handle)
    recogniser = stt if stt is not None else make_stt(settings or load_settings(), engine=engine)
    owns_recogniser = stt is None  # close what we opened (HTTP sessions), never the caller's
    run = LocalRun(source=audio, stt=recogniser, feed=handle.feed, handlers=handle.handlers)
    handle.progress = run.progress
    # Created here, in the cell that started the run, so a notebook shows it under that cell.
    bar = follow(run.progress, audio.name) if wants_bar(run.progress) else None
    started = asyncio.Event()

    async def main() -> None:
        try:
            if isinstance(recogniser, LocalSTT) and not recogniser.is_loaded:
                handle._set_status(detail=f"loading the speech model ({recogniser.model})…")
                await asyncio.to_thread(recogniser.prewarm)
            starter = asyncio.create_task(started.wait())
            runner = asyncio.ensure_future(run.run(started=started))
            await asyncio.wait({starter, runner}, return_when=asyncio.FIRST_COMPLETED)
            starter.cancel()
            if started.is_set():
                handle._set_status(state="running", detail=f"transcribing {audio.name}")
            handle.result = await runner
            handle._set_status(state="finished", detail=f"{len(handle.result)} utterances")
        except asyncio.CancelledError:
            raise
        except Exception as e:
            handle._set_status(state="error", error=describe(e))
        finally:
            if bar is not None:
                bar.cancel()
            if owns_recogniser:
                await recogniser.aclose()

    handle._task = asyncio.create_task(main(), name="stt_agent.local")
    handle._stopper = run.request_stop
    return handle


# --- room mode ---------------------------------------------------------------------------


async def start_agent(
    settings: Settings | None = None,
    *,
    feed: TranscriptFeed | None = None,
    agent_name: str | None = None,
) -> AgentHandle:
    """Register the Transcriber as a LiveKit worker from this kernel; returns at once."""
    settings = settings or load_settings()
    blocking = [p for p in settings.problems() if p.blocking and p.variable.startswith("LIVEKIT")]
    if not settings.has_livekit or blocking:
        reason = "; ".join(str(p) for p in blocking) or (
            "LIVEKIT_URL, LIVEKIT_API_KEY and LIVEKIT_API_SECRET are not all set"
        )
        raise ConfigError(f"room mode needs a LiveKit server: {reason}")
    handle = AgentHandle("room", feed if feed is not None else TranscriptFeed())
    await _replace_current(handle)
    worker = _RoomWorker(
        handle, settings, agent_name if agent_name is not None else settings.agent_name
    )
    handle._task = asyncio.create_task(worker.run(), name="stt_agent.worker")
    handle._stopper = worker.stop
    return handle


class _RoomWorker:
    """One AgentServer on the kernel loop, with its logs captured and auth failures caught."""

    _LOGGERS = ("livekit", "livekit.agents", "transcriber")

    def __init__(self, handle: AgentHandle, settings: Settings, agent_name: str) -> None:
        self.handle = handle
        self.settings = settings
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
        self._log_handler = _HandleLogHandler(self, settings)
        self._saved_logging: list[tuple[logging.Logger, bool, int]] = []
        self._saved_env = {k: os.environ.get(k) for k in _WORKER_ENV}

    async def run(self) -> None:
        self._capture_logs()
        self.handle._set_status(
            state="starting", detail=f"connecting to {self.settings.livekit_url}"
        )
        try:
            await self.server.run(devmode=True)
        except asyncio.CancelledError:
            raise
        except Exception as e:
            if self.handle.status.state != "error":
                self.handle._set_status(state="error", error=describe(e))
        finally:
            self._restore()

    async def stop(self) -> None:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.server.aclose(), _STOP_TIMEOUT_S - 0.5)
        self._restore()

    def fail(self, message: str) -> None:
        """Give up on a configuration LiveKit will never accept: no reconnect storm."""
        if self.handle.status.state == "error":
            return
        self.handle._set_status(state="error", error=message)
        asyncio.run_coroutine_threadsafe(self.stop(), self.handle._loop)

    def _on_registered(self, worker_id: str, server_info: Any) -> None:
        version = getattr(server_info, "version", "")
        self.handle._set_status(
            state="registered",
            worker_id=worker_id,
            detail=f"waiting for a job (server {version})".replace(" ()", ""),
            error=None,
        )

    async def _entrypoint(self, ctx: JobContext) -> None:
        """Runs on the job's own thread and loop; reports back through the handle."""
        handle, room_name = self.handle, ctx.room.name
        handle._set_status(state="in_job", room=room_name, participants=(), detail="connecting")
        try:
            await transcribe_room(
                ctx,
                self.settings,
                feed=handle.feed,
                handlers=handle.handlers,
                on_change=lambda who: handle._set_status(participants=who),
                load=self.load,
            )
            handle._set_status(detail="transcribing")
            ctx.add_shutdown_callback(self._job_ended)
        except Exception as e:
            # LiveKit reports a thread job as succeeded whatever happened; say it here.
            handle._set_status(
                state="registered",
                room=None,
                participants=(),
                error=f"job in {room_name}: {describe(e)}",
            )
            raise

    async def _job_ended(self, *_: Any) -> None:
        self.handle._set_status(state="registered", room=None, participants=(), detail="job ended")

    def _capture_logs(self) -> None:
        for name in self._LOGGERS:
            log = logging.getLogger(name)
            self._saved_logging.append((log, log.propagate, log.level))
            log.addHandler(self._log_handler)
            log.propagate = False
            if log.level == logging.NOTSET or log.level > logging.INFO:
                log.setLevel(logging.INFO)

    def _restore(self) -> None:
        for log, propagate, level in self._saved_logging:
            log.removeHandler(self._log_handler)
            log.propagate = propagate
            log.setLevel(level)
        self._saved_logging.clear()
        # AgentServer.run exports its credentials to os.environ; put the environment back.
        for key, value in self._saved_env.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


_WORKER_ENV = ("LIVEKIT_URL", "LIVEKIT_API_KEY", "LIVEKIT_API_SECRET", "LIVEKIT_WORKER_TOKEN")


class _HandleLogHandler(logging.Handler):
    """Sends worker log lines to the handle (log panel) and spots fatal auth failures."""

    def __init__(self, worker: _RoomWorker, settings: Settings) -> None:
        super().__init__(level=logging.INFO)
        self.worker = worker
        self._secrets = [s for s in (settings.livekit_api_secret.reveal(),) if s]
        self.setFormatter(
            logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s", "%H:%M:%S")
        )

    def emit(self, record: logging.LogRecord) -> None:
        try:
            line = self.format(record)
        except Exception:
            line = f"{record.levelname} {record.name}: {record.msg}"
        # Drop tracebacks (client errors print request headers) and anything token-like.
        line = scrub(line, self._secrets)
        self.worker.handle._log(line)
        error = getattr(record, "error", None)
        if getattr(error, "status", None) in (401, 403):
            self.worker.fail(
                f"the LiveKit server at {self.worker.settings.livekit_url} refused the API key/"
                f"secret (HTTP {error.status}). Check that LIVEKIT_API_KEY and LIVEKIT_API_SECRET "
                "are one pair from the same project (`python -m stt_agent check` tests them)."
            )
        elif record.levelno >= logging.WARNING and "failed to connect" in record.getMessage():
            self.worker.handle._set_status(
                detail=f"cannot reach {self.worker.settings.livekit_url}, retrying…"
            )
