"""One worker thread per speech model, shared by every stream, deciding what to decode next.

Many sessions (several files, several room participants) share one loaded model. Their decode
requests meet here, and one thread runs them in batches, because CTranslate2 decodes a batch
of utterances in one pass for much less than the sum of the parts (the decoder's small
per-token matrices are where a single utterance wastes the CPU). What goes into a batch is
decided so that no stream waits on another's luck:

* **urgent first**: a request that ends a turn (a final, or the speculative decode that may
  become one) is taken before any interim, oldest first, so finals never queue behind the
  interims of busy neighbours;
* **interims round-robin**: among interims, the stream served least recently goes first, and
  one stream has at most one interim in a batch;
* **no giant passes for small jobs**: the first request chosen sets the batch's encoder
  window; only requests whose window fits inside it join, so a short final is never padded
  to a 25 s monologue's window, while the monologue's own request takes short ones along;
* **interims in small bites**: a batch of interims costs at most `interim_budget` (in the
  jobs' size unit), so a turn that ends meanwhile waits for one short batch, not eight.

Requests and results are opaque here; the model-specific work is the `run` callable.
"""

from __future__ import annotations

import atexit
import itertools
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

__all__ = ["BatchScheduler", "Job"]

P = TypeVar("P")  # what a job asks for
R = TypeVar("R")  # what it gets back

_ids = itertools.count()


@dataclass(eq=False)  # a job is itself: never compared by its (array) payload
class Job(Generic[P, R]):
    payload: P
    stream: int  # jobs of one stream are served in turn with other streams'
    urgent: bool  # ends a turn: taken before every interim
    group: Any  # only jobs of one group share a batch (e.g. the same beam size)
    size: int  # cost unit of the batch it sets (e.g. encoder frames)
    future: Future[R] = field(default_factory=Future)
    asked: float = field(default_factory=time.monotonic)
    seq: int = field(default_factory=lambda: next(_ids))


class BatchScheduler(Generic[P, R]):
    """Runs `run(payloads) -> results` on one thread, a fair batch at a time."""

    def __init__(
        self,
        run: Callable[[Sequence[P]], Sequence[R]],
        *,
        max_batch: int = 8,
        interim_budget: int | None = None,
        name: str = "stt-agent-decoder",
    ) -> None:
        self._run = run
        self.max_batch = max_batch
        self.interim_budget = interim_budget
        self._queue: list[Job[P, R]] = []
        self._cv = threading.Condition()
        self._served: dict[int, int] = {}  # stream -> number of the batch that last served it
        self._batches = 0
        self.running = 0  # jobs in the batch being decoded
        self.batch_sizes: Counter[int] = Counter()  # for the benchmarks: how full batches were
        self._closing = False
        self._thread = threading.Thread(target=self._work, name=name, daemon=True)
        self._thread.start()
        # A batch still running while the interpreter tears the model down aborts the process
        # ("terminate called without an active exception"): let it finish first.
        atexit.register(self.close)

    # --- the streams' side (any thread) ---------------------------------------------------

    def submit(self, job: Job[P, R]) -> Future[R]:
        with self._cv:
            self._queue.append(job)
            self._cv.notify()
        return job.future

    @property
    def pending(self) -> int:
        """Jobs queued or being decoded."""
        with self._cv:
            return len(self._queue) + self.running

    @property
    def urgent_waiting(self) -> int:
        with self._cv:
            return sum(j.urgent for j in self._queue)

    def close(self, timeout: float = 10.0) -> None:
        """Finish the running batch, cancel what is queued, stop the thread."""
        with self._cv:
            self._closing = True
            for job in self._queue:
                job.future.cancel()
            self._queue.clear()
            self._cv.notify()
        if self._thread is not threading.current_thread():
            self._thread.join(timeout)

    def forget(self, stream: int) -> None:
        """A stream has closed: drop its place in the round-robin."""
        with self._cv:
            self._served.pop(stream, None)

    # --- the worker -----------------------------------------------------------------------

    def _take(self) -> list[Job[P, R]]:
        """The next batch (called with the lock held, queue not empty)."""
        urgent = sorted((j for j in self._queue if j.urgent), key=lambda j: j.seq)
        interims = sorted(
            (j for j in self._queue if not j.urgent),
            key=lambda j: (self._served.get(j.stream, -1), j.seq),
        )
        ordered = urgent or interims  # an interim never delays a turn's end
        first = ordered[0]
        batch = [first]
        streams = {first.stream}
        budget = None if first.urgent else self.interim_budget
        for job in ordered[1:]:
            if len(batch) >= self.max_batch:
                break
            if budget is not None and first.size * (len(batch) + 1) > budget:
                break  # every job in the batch costs the first one's window
            if job.group != first.group or job.size > first.size:
                continue
            if not job.urgent and job.stream in streams:
                continue
            batch.append(job)
            streams.add(job.stream)
        for job in batch:
            self._queue.remove(job)
        return batch

    def _work(self) -> None:
        while True:
            with self._cv:
                while not self._queue and not self._closing:
                    self._cv.wait()
                if self._closing:
                    return
                batch = [j for j in self._take() if j.future.set_running_or_notify_cancel()]
                self._batches += 1
                for job in batch:
                    self._served[job.stream] = self._batches
                self.running = len(batch)
            if not batch:
                continue
            self.batch_sizes[len(batch)] += 1
            try:
                results = self._run([j.payload for j in batch])
            except Exception as e:  # handed to whoever waits for the batch
                for job in batch:
                    job.future.set_exception(e)
            else:
                for job, result in zip(batch, results, strict=True):
                    job.future.set_result(result)
            finally:
                with self._cv:
                    self.running = 0
