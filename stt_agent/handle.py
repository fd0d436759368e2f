"""The handle `start_local` and `start_agent` return, and the one-agent-at-a-time rule.

A handle is the notebook's side of a running agent: its status, its feed of utterances, its
turn handlers, its worker log, and `stop()`. Status changes and log lines may come from any
thread (room jobs run on threads of their own); they are applied on the kernel's loop, where
status listeners (the `StatusView`) run.

One agent at a time: a kernel runs at most one agent started by the kit. Starting another
(`start_local` or `start_agent`, a cell run again) first stops the running one, and that
agent's status then says why: `stopped · replaced: a new agent was started`. A room worker
takes over LiveKit's loggers and the process environment while it runs, and every agent holds
a speech engine (model memory, CPU); two would fight over them, and a cell run twice would
otherwise leave a worker behind that nobody can see or stop. `current_agent()` is that agent.

The runners (`stt_agent.local_agent`, `stt_agent.room.worker`) drive a handle through a small
seam, meant for them and not for notebooks: `attach` (the task and how to stop it), `report`
(status changes), `fail` (a terminal error), `log` (a worker log line).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field, replace
from typing import Any, Literal, TypedDict, Unpack

from .errors import EngineError, RoomError, SttAgentError
from .feed import TranscriptFeed, Utterance
from .handlers import Handler, TurnHandlers
from .loops import call_on
from .progress import RunProgress
from .scrub import describe

__all__ = [
    "REPLACED",
    "AgentHandle",
    "AgentStatus",
    "State",
    "StatusChanges",
    "current_agent",
    "new_handle",
]

State = Literal["starting", "registered", "in_job", "running", "finished", "stopped", "error"]
Mode = Literal["room", "local"]
# The detail of an agent stopped because another one was started (the one-agent rule).
REPLACED = "replaced: a new agent was started"
# `stop()` promises to return within a few seconds: a bounded drain, then close.
STOP_TIMEOUT_S = 4.0
_LOG_HISTORY = 300
_READY: frozenset[State] = frozenset({"registered", "running", "in_job", "error", "finished"})
_ENDED: frozenset[State] = frozenset({"finished", "stopped", "error"})
_RUNNING: frozenset[State] = frozenset({"starting", "registered", "in_job", "running"})


@dataclass(frozen=True)
class AgentStatus:
    """What an agent is doing; `str()` is the one-line summary the `StatusView` shows."""

    state: State
    detail: str = ""
    worker_id: str | None = None
    room: str | None = None
    participants: tuple[str, ...] = ()
    error: str | None = None
    since: float = field(default_factory=time.time)

    def __str__(self) -> str:
        parts: list[str] = [self.state]
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


class StatusChanges(TypedDict, total=False):
    """The fields of `AgentStatus` a runner may change with `AgentHandle.report`."""

    state: State
    detail: str
    worker_id: str | None
    room: str | None
    participants: tuple[str, ...]
    error: str | None


class AgentHandle:
    """What `start_agent` / `start_local` return: status, feed, turn handlers, and stop().

    Made by `new_handle` (which applies the one-agent rule), on the kernel's loop.
    """

    def __init__(self, mode: Mode, feed: TranscriptFeed) -> None:
        self.mode = mode
        self.feed = feed
        self.handlers = TurnHandlers()
        self.logs: deque[str] = deque(maxlen=_LOG_HISTORY)
        self.result: list[Utterance] | None = None
        # Local runs: audio fed, recognised and turns delivered so far (see stt_agent.progress).
        self.progress: RunProgress | None = None
        self._status = AgentStatus("starting")
        self._status_listeners: list[Callable[[AgentStatus], Any]] = []
        self._loop = asyncio.get_running_loop()
        self._ready = asyncio.Event()
        self._ended = asyncio.Event()
        self._task: asyncio.Task[Any] | None = None
        self._stopper: Callable[[], Awaitable[Any]] | None = None
        self._stopping: asyncio.Future[None] | None = None  # the one stop, however often asked
        self._failure: BaseException | None = None
        feed.bind(self._loop)

    # --- status (listeners run on the kernel loop) ----------------------------------------

    @property
    def status(self) -> AgentStatus:
        return self._status

    def on_status(self, fn: Callable[[AgentStatus], Any]) -> Callable[[], None]:
        """Call `fn(status)` on every change; returns a function that unsubscribes it."""
        self._status_listeners.append(fn)
        return lambda: self._status_listeners.remove(fn) if fn in self._status_listeners else None

    @property
    def running(self) -> bool:
        return self._status.state in _RUNNING

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
        """Until registered (room) or transcribing (local).

        Raises the kit's error when the agent failed instead: the one it failed with when that
        was the kit's own, else `RoomError` (room mode) or `EngineError` (local mode) carrying
        the status's error line.
        """
        await asyncio.wait_for(self._ready.wait(), timeout)
        if self._status.state == "error":
            if isinstance(self._failure, SttAgentError):
                raise self._failure
            kind = RoomError if self.mode == "room" else EngineError
            raise kind(self._status.error or f"the {self.mode} agent failed")
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
        await self._stop(detail="")

    async def _stop(self, *, detail: str) -> None:
        """Stop once: a second `stop()` (or a replacement after a stop) waits for the first
        instead of closing LiveKit's server again, which would re-raise its cancelled close."""
        if self._stopping is None:
            self._stopping = asyncio.ensure_future(self._stop_once(detail))
        await asyncio.shield(self._stopping)

    async def _stop_once(self, detail: str) -> None:
        deadline = time.monotonic() + STOP_TIMEOUT_S
        if self._stopper is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._stopper(), STOP_TIMEOUT_S)
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
            self.report(state="stopped", detail=detail)
        self._ended.set()
        _one_agent.release(self)

    def __repr__(self) -> str:
        return f"<AgentHandle {self.mode}: {self._status}>"

    # --- the runners' seam: package-internal, safe from any thread -------------------------

    def attach(self, task: asyncio.Task[Any], stopper: Callable[[], Awaitable[Any]]) -> None:
        """The runner's task, and how to ask it to finish (awaited first by `stop()`)."""
        self._task, self._stopper = task, stopper

    def report(self, **changes: Unpack[StatusChanges]) -> None:
        """Change the status. A stopped agent stays stopped, and keeps saying why, whatever a
        late event from a job thread says (it may still say who left)."""

        def apply() -> None:
            if self._status.state == "stopped":
                if changes.get("state", "stopped") != "stopped":
                    return  # a late job event must not resurrect a stopped agent
                if "state" not in changes:
                    changes.pop("detail", None)
                    changes.pop("error", None)
            self._status = replace(self._status, since=time.time(), **changes)
            if self._status.state in _READY:
                self._ready.set()
            if self._status.state in _ENDED:
                self._ended.set()
            for fn in list(self._status_listeners):
                try:
                    fn(self._status)
                except Exception:
                    logging.getLogger("stt_agent").exception("status listener failed")

        self._on_loop(apply)

    def fail(self, error: BaseException | str, *, secrets: Iterable[str] = ()) -> None:
        """A terminal error: the status says it in one line (`secrets` left out of it), and
        `wait_ready` raises it."""
        if isinstance(error, BaseException):
            self._failure = error
            error = describe(error, secrets)
        self.report(state="error", error=error)

    def log(self, line: str) -> None:
        """One line for the worker log panel (already scrubbed by the caller)."""
        self._on_loop(lambda: self.logs.append(line))

    def _on_loop(self, fn: Callable[[], None]) -> None:
        call_on(self._loop, fn)


class _OneAgent:
    """The one-agent-at-a-time rule (see the module's docstring): who runs, and the hand-over."""

    def __init__(self) -> None:
        self.current: AgentHandle | None = None

    async def hand_over(self, handle: AgentHandle) -> None:
        previous, self.current = self.current, handle
        if previous is not None and previous.running:
            await previous._stop(detail=REPLACED)

    def release(self, handle: AgentHandle) -> None:
        if self.current is handle:
            self.current = None


_one_agent = _OneAgent()


async def new_handle(mode: Mode, feed: TranscriptFeed | None = None) -> AgentHandle:
    """A handle for a new agent; the agent running until now is stopped first (`REPLACED`)."""
    handle = AgentHandle(mode, feed if feed is not None else TranscriptFeed())
    await _one_agent.hand_over(handle)
    return handle


def current_agent() -> AgentHandle | None:
    """The agent the kit runs in this kernel, if one was started and not stopped."""
    return _one_agent.current
