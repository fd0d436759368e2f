"""Turn handlers: plain or async functions of an `Utterance`, swappable while the agent runs.

A handler may return:
* `None` – nothing to add;
* a `dict` of JSON values – annotations shown next to the text (e.g. `{"wpm": 152}`);
* a `str` – replacement text (e.g. a redacted transcript); later handlers see the new text.

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
import itertools
import json
import queue
import re
import threading
from collections.abc import Awaitable, Callable, Iterable
from concurrent.futures import Executor, Future
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .feed import Utterance
from .scrub import describe

__all__ = [
    "HandlerStats",
    "TurnHandlers",
    "append_jsonl",
    "keyword_alert",
    "redact",
    "words_per_minute",
]

Handler = Callable[[Utterance], Any | Awaitable[Any]]
DEFAULT_TIMEOUT_S = 2.0
_IDLE_THREAD_S = 30.0  # an idle handler thread exits after this long


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
        self._threads: _DaemonThreads | None = None
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
        try:
            await asyncio.wait(
                {task, closing}, timeout=timeout_s, return_when=asyncio.FIRST_COMPLETED
            )
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

    def _executor(self) -> _DaemonThreads:
        with self._lock:
            if self._threads is None:
                self._threads = _DaemonThreads("stt-agent-handler")
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


class _DaemonThreads(Executor):
    """Runs one agent's plain-function handlers on daemon threads, started when all are busy,
    reused while idle, ended after a while idle or at `shutdown()`.

    Why not `ThreadPoolExecutor`: its fixed pool fills up with stuck calls, and its threads
    are joined at interpreter exit, so one `time.sleep(10**6)` keeps the process alive.
    """

    def __init__(self, prefix: str, idle_s: float = _IDLE_THREAD_S) -> None:
        self._prefix = prefix
        self._idle_s = idle_s
        self._lock = threading.Lock()
        self._idle: list[tuple[queue.SimpleQueue[Any], threading.Thread]] = []  # inbox, thread
        self._closed = False
        self._numbers = itertools.count(1)

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        future: Future[Any] = Future()
        job = (future, fn, args, kwargs)
        with self._lock:
            if self._closed:
                raise RuntimeError("cannot run a handler: these threads were shut down")
            if self._idle:
                self._idle.pop()[0].put(job)
                return future
            number = next(self._numbers)
        inbox: queue.SimpleQueue[Any] = queue.SimpleQueue()
        inbox.put(job)
        threading.Thread(
            target=self._work, args=(inbox,), name=f"{self._prefix}-{number}", daemon=True
        ).start()
        return future

    def _work(self, inbox: queue.SimpleQueue[Any]) -> None:
        job = inbox.get()
        while job is not None:
            future, fn, args, kwargs = job
            job = None  # hold no reference to the utterance while idle
            if future.set_running_or_notify_cancel():
                try:
                    future.set_result(fn(*args, **kwargs))
                except BaseException as e:
                    future.set_exception(e)
            del future, fn, args, kwargs
            me = (inbox, threading.current_thread())
            with self._lock:
                if self._closed:
                    return
                self._idle.append(me)
            try:
                job = inbox.get(timeout=self._idle_s)
            except queue.Empty:
                with self._lock:
                    if me in self._idle:
                        self._idle.remove(me)
                        return
                # handed a job (or told to stop) just as the wait ended: it is in the inbox
                job = inbox.get()

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        """End the idle threads (joined when `wait`: they are idle, so that is at once) and
        let busy ones end after their call; a stuck one is never waited for."""
        with self._lock:
            self._closed = True
            idle, self._idle = self._idle, []
        for inbox, _ in idle:
            inbox.put(None)
        if wait:
            for _, thread in idle:
                thread.join(timeout=1.0)


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
        if utterance.original_text is None:
            utterance.original_text = utterance.text
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


# --- examples ------------------------------------------------------------------------------


def keyword_alert(keywords: Iterable[str]) -> Handler:
    """Annotate utterances that mention any of `keywords` (whole words, any case)."""
    words = [k.lower() for k in keywords]
    pattern = re.compile(r"\b(" + "|".join(map(re.escape, words)) + r")\b", re.I)

    def keyword_alert(u: Utterance) -> dict[str, Any] | None:
        hits = sorted({m.group(1).lower() for m in pattern.finditer(u.text)})
        return {"alert": hits} if hits else None

    return keyword_alert


_DEFAULT_REDACTIONS = (
    r"\b\d[\d -]{6,}\d\b",  # card, phone and account numbers
    r"\b[\w.+-]+@[\w-]+\.[\w.]+\b",  # e-mail addresses
)


def redact(words: Iterable[str] = (), *, patterns: Iterable[str] = _DEFAULT_REDACTIONS) -> Handler:
    """Replace the given words and patterns with █ blocks (returns the new text)."""
    parts = [*patterns, *(r"\b" + re.escape(w) + r"\b" for w in words)]
    pattern = re.compile("|".join(parts), re.I) if parts else None

    def redact(u: Utterance) -> str | None:
        if pattern is None:
            return None
        new = pattern.sub(lambda m: "█" * len(m.group(0)), u.text)
        return new if new != u.text else None

    return redact


def words_per_minute(u: Utterance) -> dict[str, Any] | None:
    """Speaking rate of the utterance, from its audio timestamps."""
    if u.start is None or u.end is None or u.end <= u.start:
        return None
    words = len(u.text.split())
    return {"wpm": round(words / ((u.end - u.start) / 60.0))}


def append_jsonl(path: str | Path) -> Handler:
    """Append every utterance to a JSON Lines file (one object per line)."""
    target = Path(path)
    lock = threading.Lock()

    def append_jsonl(u: Utterance) -> None:
        line = json.dumps(u.to_dict(), ensure_ascii=False)
        with lock, target.open("a", encoding="utf-8") as f:
            f.write(line + "\n")

    return append_jsonl
