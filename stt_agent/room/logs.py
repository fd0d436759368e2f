"""The worker's log lines go to the handle's log panel, scrubbed, instead of whatever cell runs.

LiveKit's worker logs through the `livekit` and `livekit.agents` loggers, the Transcriber through
`transcriber`. While a worker runs in the kernel, those loggers stop propagating to the root
logger (whose handler prints into the cell that happens to be running) and feed the handle
instead; `restore` puts back exactly what was there.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable

from ..handle import AgentHandle
from ..scrub import scrub

__all__ = ["LOGGERS", "WorkerLogs"]

LOGGERS = ("livekit", "livekit.agents", "transcriber")
_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


class WorkerLogs:
    """Captures `LOGGERS` into `handle.log` between `capture()` and `restore()`.

    `watch(record)` sees every record too, for the worker to spot failures in LiveKit's logs.
    """

    def __init__(
        self,
        handle: AgentHandle,
        *,
        secrets: Iterable[str] = (),
        watch: Callable[[logging.LogRecord], None] | None = None,
    ) -> None:
        self._handler = _ToHandle(handle, [s for s in secrets if s], watch)
        self._saved: list[tuple[logging.Logger, bool, int]] = []

    def capture(self) -> None:
        for name in LOGGERS:
            log = logging.getLogger(name)
            self._saved.append((log, log.propagate, log.level))
            log.addHandler(self._handler)
            log.propagate = False
            if log.level == logging.NOTSET or log.level > logging.INFO:
                log.setLevel(logging.INFO)

    def restore(self) -> None:
        """Safe to call twice: the second call finds nothing saved."""
        for log, propagate, level in self._saved:
            log.removeHandler(self._handler)
            log.propagate = propagate
            log.setLevel(level)
        self._saved.clear()


class _ToHandle(logging.Handler):
    def __init__(
        self,
        handle: AgentHandle,
        secrets: list[str],
        watch: Callable[[logging.LogRecord], None] | None,
    ) -> None:
        super().__init__(level=logging.INFO)
        self._handle = handle
        self._secrets = secrets
        self._watch = watch
        self.setFormatter(logging.Formatter(_FORMAT, "%H:%M:%S"))

    def emit(self, record: logging.LogRecord) -> None:
        try:
            line = self.format(record)
        except Exception:
            line = f"{record.levelname} {record.name}: {record.msg}"
        # Only the first line (tracebacks of client errors print request headers), no tokens.
        self._handle.log(scrub(line, self._secrets))
        if self._watch is not None:
            self._watch(record)
