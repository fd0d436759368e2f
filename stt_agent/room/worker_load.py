"""What a worker tells LiveKit about its load, so a big event's jobs spread over workers.

LiveKit sends a new job only to workers whose reported load is under the threshold (0.7 in
production), and by default the load is the machine's CPU use. A transcribing worker's real
limit is how many streams its speech engine keeps up with, so the kit reports the larger of
the CPU use and the share of its stream capacity in use (`STT_AGENT_MAX_STREAMS`, by default
what the local engine keeps up with on two cores, or many more for a streaming service).

This counts the streams of the jobs in this process: the notebook's worker runs its jobs on
threads, so it sees them all. `python -m stt_agent start` runs each job in a process of its
own; there the CPU use, which includes those processes, is what LiveKit balances on.
"""

from __future__ import annotations

import threading
from collections import deque

import psutil

__all__ = ["DEFAULT_MAX_STREAMS", "LOAD_THRESHOLD", "StreamLoad"]

# Real-time streams one worker keeps up with (see the README's Performance section).
DEFAULT_MAX_STREAMS = {"local": 4, "assemblyai": 40}
# Full at capacity: one more stream than it keeps up with would fall behind.
LOAD_THRESHOLD = 1.0
# LiveKit asks for the load every 0.5 s; CPU use is averaged over the last few seconds so one
# decode burst does not mark the worker full.
_CPU_READINGS = 10


class StreamLoad:
    """A thread-safe count of streams being transcribed, and the load it means."""

    def __init__(self, capacity: int) -> None:
        if capacity < 1:
            raise ValueError(f"a worker's stream capacity must be at least 1, got {capacity}")
        self.capacity = capacity
        self._active = 0
        self._lock = threading.Lock()
        self._cpu: deque[float] = deque(maxlen=_CPU_READINGS)
        psutil.cpu_percent()  # the first reading only starts the measurement

    @property
    def active(self) -> int:
        return self._active

    def started(self) -> None:
        with self._lock:
            self._active += 1

    def stopped(self) -> None:
        with self._lock:
            self._active = max(0, self._active - 1)

    def __call__(self) -> float:
        """LiveKit's `load_fnc`: 0 idle, 1 full."""
        streams = self._active / self.capacity
        self._cpu.append(psutil.cpu_percent() / 100.0)  # since the previous call
        cpu = sum(self._cpu) / len(self._cpu)
        return round(min(1.0, max(streams, cpu)), 3)
