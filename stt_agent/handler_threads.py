"""Daemon threads for one agent's plain-function turn handlers.

A handler stuck in `time.sleep(10**6)` must tie up one thread of its agent only and never keep
the interpreter from exiting; `TurnHandlers` (in `handlers`) abandons such a call and carries on.
"""

from __future__ import annotations

import itertools
import queue
import threading
from collections.abc import Callable
from concurrent.futures import Executor, Future
from typing import Any, ParamSpec, TypeVar

__all__ = ["IDLE_THREAD_S", "DaemonThreads"]

IDLE_THREAD_S = 30.0  # an idle handler thread exits after this long

P = ParamSpec("P")
T = TypeVar("T")


class DaemonThreads(Executor):
    """Runs one agent's plain-function handlers on daemon threads, started when all are busy,
    reused while idle, ended after a while idle or at `shutdown()`.

    Why not `ThreadPoolExecutor`: its fixed pool fills up with stuck calls, and its threads
    are joined at interpreter exit, so one `time.sleep(10**6)` keeps the process alive.
    """

    def __init__(self, prefix: str, idle_s: float = IDLE_THREAD_S) -> None:
        self._prefix = prefix
        self._idle_s = idle_s
        self._lock = threading.Lock()
        self._idle: list[tuple[queue.SimpleQueue[Any], threading.Thread]] = []  # inbox, thread
        self._closed = False
        self._numbers = itertools.count(1)

    def submit(self, fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> Future[T]:
        future: Future[T] = Future()
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
