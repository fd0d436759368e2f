"""Turn handlers: plain or async functions of an `Utterance`, swappable while the agent runs.

A handler may return:
* `None` – nothing to add;
* a `dict` of JSON values – annotations shown next to the text (e.g. `{"wpm": 152}`);
* a `str` – replacement text (e.g. a redacted transcript); later handlers see the new text.
  The text it replaced is dropped: the feed, its exports, the views and the saved notebook
  only ever hold the new text. A handler that wants the replaced text kept (to see what a
  corrector changed, say) sets `u.original_text` itself before returning, as
  `redact(..., keep_original=True)` does.

Anything else (a list, a generator, a dict holding a `datetime`) is recorded as an error on
the utterance when it is returned, so an export never fails on it later.

Isolation: whatever a handler does, the transcript carries on.
* An exception, `SystemExit` and `KeyboardInterrupt` included, is recorded on the utterance
  and counted; it never ends the agent or the process.
* Each `TurnHandlers` (one per agent) runs its plain functions on its own daemon threads, so a
  handler stuck in `time.sleep(10**6)` ties up one thread of that agent only, is never waited
  for at interpreter exit, and is not called again while the stuck call is still running.
* Time: the handlers of one utterance share one budget, `timeout_s` (2 s by default). They run
  one after another in the order they were added, so each sees the text as the ones before it
  left it (a redactor added first is never bypassed by a later handler working on the
  unredacted text). When the budget runs out, the handler still running is abandoned and the
  ones after it are not run; both are recorded on the utterance. Several slow handlers thus
  cost one timeout, not the sum, and an utterance is never held longer than `timeout_s`.
  Put handlers that must always run first, and raise `timeout_s` for legitimately slow ones.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import threading
from collections.abc import Awaitable, Callable
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any

from .feed import Utterance
from .handler_threads import DaemonThreads
from .scrub import describe

__all__ = ["Handler", "HandlerStats", "TurnHandlers"]

Handler = Callable[[Utterance], Any | Awaitable[Any]]
DEFAULT_TIMEOUT_S = 2.0


@dataclass
class HandlerStats:
    calls: int = 0
    errors: int = 0
    timeouts: int = 0
    skipped: int = 0  # not run: no time left, or still stuck in an earlier call
    last_error: str | None = None


@dataclass
class _Outcome:
    """What a handler call ended with; exceptions travel as values so that `SystemExit` or
    `KeyboardInterrupt` never reach the event loop (which would re-raise them)."""

    value: Any = None
    error: BaseException | None = None


class TurnHandlers:
    """An ordered, thread-safe registry of turn handlers, keyed by name, with its own threads.

    One instance belongs to one agent; room mode shares it between the sessions of that agent,
    whose jobs run on their own threads and loops, so `run` may be called from several loops.
    """

    def __init__(self, timeout_s: float = DEFAULT_TIMEOUT_S) -> None:
        self.timeout_s = timeout_s
        self._handlers: dict[str, Handler] = {}
        self._lock = threading.Lock()
        self.stats: dict[str, HandlerStats] = {}
        self._threads: DaemonThreads | None = None
        # abandoned calls still running in their threads, by id() of the function: a fixed
        # version registered under the same name is not held back by the stuck one
        self._stuck: dict[int, int] = {}
        self._runs: set[tuple[asyncio.AbstractEventLoop, asyncio.Future[None]]] = set()

    def add(self, fn: Handler, *, name: str | None = None) -> Handler:
        """Add `fn`, or replace the handler registered under the same name; returns `fn`
        so it can be used as a decorator."""
        if not callable(fn):
            raise TypeError(f"a turn handler must be callable, got {type(fn).__name__}")
        key = name or _name_of(fn)
        with self._lock:
            self._handlers[key] = fn
            self.stats.setdefault(key, HandlerStats())
        return fn

    def remove(self, fn_or_name: Handler | str) -> None:
        with self._lock:
            if isinstance(fn_or_name, str):
                key = fn_or_name
            else:
                key = next((k for k, f in self._handlers.items() if f is fn_or_name), "")
                key = key or _name_of(fn_or_name)
            if key not in self._handlers:
                raise KeyError(f"no turn handler named {key!r}; have {list(self._handlers)}")
            del self._handlers[key]

    def clear(self) -> None:
        with self._lock:
            self._handlers.clear()

    @property
    def names(self) -> list[str]:
        with self._lock:
            return list(self._handlers)

    def snapshot(self) -> list[tuple[str, Handler]]:
        with self._lock:
            return list(self._handlers.items())

    @property
    def error_count(self) -> int:
        return sum(s.errors + s.timeouts for s in self.stats.values())

    # --- running ------------------------------------------------------------------------

    async def run(self, utterance: Utterance) -> Utterance:
        """Run every handler registered now, in order, on `utterance` (changed in place).

        Returns within `timeout_s` (see the module's notes), or at once when `close()` is
        called meanwhile; never raises for anything a handler does.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.timeout_s
        closing: asyncio.Future[None] = loop.create_future()
        entry = (loop, closing)
        with self._lock:
            self._runs.add(entry)
        try:
            handlers = self.snapshot()
            for i, (name, fn) in enumerate(handlers):
                if closing.done():
                    self._skip(utterance, handlers[i:], "the agent stopped")
                    break
                if self._stuck.get(id(fn)):
                    self._skip(
                        utterance, [(name, fn)], "still running from an earlier utterance (stuck?)"
                    )
                    continue
                remaining = deadline - loop.time()
                if remaining <= 0:
                    reason = f"the {self.timeout_s:g} s for this utterance's handlers ran out"
                    self._skip(utterance, handlers[i:], reason)
                    break
                self._stats(name).calls += 1
                outcome = await self._call(name, fn, utterance, remaining, closing)
                if outcome is None:
                    if closing.done():
                        message = f"{name}: abandoned, the agent stopped"
                    else:
                        message = (
                            f"{name}: timed out, the {self.timeout_s:g} s for this utterance's "
                            "handlers ran out"
                        )
                    self._record(utterance, name, message, timeout=True)
                elif outcome.error is not None:
                    self._record(utterance, name, f"{name}: {describe(outcome.error)}")
                else:
                    try:
                        _apply(utterance, outcome.value)
                    except TypeError as e:
                        self._record(utterance, name, f"{name}: {e}")
        finally:
            with self._lock:
                self._runs.discard(entry)
        return utterance

    async def _call(
        self,
        name: str,
        fn: Handler,
        utterance: Utterance,
        timeout_s: float,
        closing: asyncio.Future[None],
    ) -> _Outcome | None:
        """One handler call; None when it was abandoned (out of time, or `close()`)."""
        thread_job: list[Future[_Outcome]] = []
        task = asyncio.ensure_future(self._invoke(fn, utterance, thread_job))
        waiters: set[asyncio.Future[Any]] = {task, closing}
        try:
            await asyncio.wait(waiters, timeout=timeout_s, return_when=asyncio.FIRST_COMPLETED)
        finally:
            if not task.done():
                task.cancel()  # an async handler gets CancelledError; a thread runs on
                task.add_done_callback(_consume)
                if thread_job and not thread_job[0].done():
                    self._mark_stuck(id(fn), thread_job[0])
        if not task.done() or task.cancelled():
            return None
        error = task.exception()
        return _Outcome(error=error) if error is not None else task.result()

    async def _invoke(
        self, fn: Handler, utterance: Utterance, thread_job: list[Future[_Outcome]]
    ) -> _Outcome:
        if _is_async(fn):
            return await _guarded_await(fn, utterance)
        job = self._executor().submit(_guarded_call, fn, utterance)
        thread_job.append(job)
        outcome = await asyncio.wrap_future(job)
        if outcome.error is None and inspect.isawaitable(outcome.value):
            # a plain function that returned a coroutine: await it here, on the loop
            return await _guarded_await(lambda _: outcome.value, utterance)
        return outcome

    def _executor(self) -> DaemonThreads:
        with self._lock:
            if self._threads is None:
                self._threads = DaemonThreads("stt-agent-handler")
            return self._threads

    def _mark_stuck(self, key: int, job: Future[_Outcome]) -> None:
        with self._lock:
            self._stuck[key] = self._stuck.get(key, 0) + 1

        def unstuck(_: object) -> None:  # runs on the handler's thread when it finally ends
            with self._lock:
                left = self._stuck.get(key, 1) - 1
                if left > 0:
                    self._stuck[key] = left
                else:
                    self._stuck.pop(key, None)

        job.add_done_callback(unstuck)

    def _stats(self, name: str) -> HandlerStats:
        with self._lock:
            return self.stats.setdefault(name, HandlerStats())

    def _record(self, u: Utterance, name: str, message: str, *, timeout: bool = False) -> None:
        stats = self._stats(name)
        if timeout:
            stats.timeouts += 1
        else:
            stats.errors += 1
        stats.last_error = message
        u.handler_errors.append(message)

    def _skip(self, u: Utterance, handlers: list[tuple[str, Handler]], reason: str) -> None:
        for name, _ in handlers:
            self._stats(name).skipped += 1
            u.handler_errors.append(f"{name}: not run, {reason}")

    def close(self) -> None:
        """Abandon the handlers running now and let this agent's idle threads go.

        For the runtime's `stop()`: every `run` in progress returns at once (the handlers it
        was waiting for are recorded as abandoned), async handlers are cancelled, and a
        plain function stuck in its thread is left behind on a daemon thread, which never
        delays the interpreter's exit. The registry stays usable: a later `run` starts
        new threads.
        """
        with self._lock:
            threads, self._threads = self._threads, None
            runs = list(self._runs)
        if threads is not None:
            threads.shutdown(wait=True)  # only idle threads are joined
        for loop, closing in runs:
            if not loop.is_closed():
                # `run` may be waiting on another thread's loop (room-mode jobs)
                loop.call_soon_threadsafe(_resolve, closing)

    def __repr__(self) -> str:
        return f"TurnHandlers({self.names}, timeout_s={self.timeout_s})"


def _is_async(fn: Handler) -> bool:
    return inspect.iscoroutinefunction(fn) or inspect.iscoroutinefunction(
        getattr(fn, "__call__", None)  # noqa: B004 - async callable objects
    )


def _guarded_call(fn: Handler, utterance: Utterance) -> _Outcome:
    try:
        return _Outcome(value=fn(utterance))
    except BaseException as e:  # SystemExit and KeyboardInterrupt too: see _Outcome
        return _Outcome(error=e)


async def _guarded_await(fn: Handler, utterance: Utterance) -> _Outcome:
    try:
        result = fn(utterance)
        if inspect.isawaitable(result):
            result = await result
        return _Outcome(value=result)
    except asyncio.CancelledError as e:
        task = asyncio.current_task()
        if task is not None and task.cancelling():
            raise  # abandoned by `run`
        return _Outcome(error=e)  # raised by the handler itself
    except BaseException as e:
        return _Outcome(error=e)


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


def _consume(task: asyncio.Future[Any]) -> None:
    # an abandoned task's outcome is already recorded; retrieving it keeps asyncio quiet
    if not task.cancelled():
        task.exception()


def _apply(utterance: Utterance, result: Any) -> None:
    """Apply a handler's return value, or raise TypeError saying what was wrong with it."""
    if result is None:
        return
    if isinstance(result, str):
        # The replaced text is not kept here: a redactor's words must not reach an export.
        utterance.text = str(result)
    elif isinstance(result, dict):
        try:
            # a copy through JSON: exports can always write it, and a handler mutating its
            # dict later (from an abandoned thread, say) cannot change the utterance
            annotations = json.loads(json.dumps(result))
        except (TypeError, ValueError) as e:
            raise TypeError(f"returned a dict that JSON cannot hold ({e})") from None
        utterance.annotations.update(annotations)
    else:
        raise TypeError(
            f"returned {_kind(result)}; a handler returns None, a str (new text) or a dict "
            "of JSON values (annotations)"
        )


def _kind(value: Any) -> str:
    name = type(value).__name__
    return f"an {name}" if name[:1].lower() in "aeiou" else f"a {name}"


def _name_of(fn: Callable[..., Any]) -> str:
    return getattr(fn, "__name__", None) or type(fn).__name__
