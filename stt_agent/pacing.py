"""Audio at the speed it is spoken, without drift, and the silence that ends a recording.

Everything the kit plays "live" (a file or array source in real time, the listening tail after
it, the virtual speaker in a room) paces itself with `Pacer`; every finite source ends with
`with_trailing_silence`, so the VAD hears the last utterance end as it would from a microphone.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable

import numpy as np

__all__ = ["Pacer", "with_trailing_silence"]


class Pacer:
    """Releases audio no earlier than it would be spoken, counted from the first release.

    `await pacer.wait(audio_s)` returns at `start + audio_s - lead_s` (or at once if that has
    passed), where `start` is the clock's reading at the first call. Every deadline comes from
    `start`, not from the previous wake-up, so a late wake-up (a busy loop) is caught up on the
    next frames instead of adding up: no drift over an hour of audio.

    `lead_s` releases that much ahead of real time (a queue downstream is kept that full).
    With `realtime=False` nothing waits, but `start` is still recorded, so
    `wall_time_of` can tell when audio was handed on. `clock` must be the clock `start`
    is compared with elsewhere (`time.time` for wall-clock latencies); `sleep` is for tests.
    """

    def __init__(
        self,
        *,
        realtime: bool = True,
        lead_s: float = 0.0,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[object]] = asyncio.sleep,
    ) -> None:
        self.realtime = realtime
        self.lead_s = lead_s
        self.start: float | None = None  # the clock at audio time 0
        self._clock = clock
        self._sleep = sleep

    async def wait(self, audio_s: float) -> None:
        """Until the audio at `audio_s` (seconds from the first frame) is due."""
        if self.start is None:
            self.start = self._clock()
        if not self.realtime:
            return
        delay = self.start + audio_s - self.lead_s - self._clock()
        if delay > 0:
            await self._sleep(delay)

    def wall_time_of(self, audio_s: float) -> float | None:
        """The clock reading at which `audio_s` was due; None before the first frame or when
        not paced (then audio time says nothing about the clock)."""
        if self.start is None or not self.realtime:
            return None
        return self.start + audio_s


async def with_trailing_silence(
    chunks: AsyncIterable[np.ndarray],
    seconds: float,
    *,
    sample_rate: int,
    frame_samples: int,
) -> AsyncIterator[np.ndarray]:
    """`chunks` (int16 mono samples), then at least `seconds` of silence.

    The silence is rounded up so the whole stream is a multiple of `frame_samples`: the last
    frame is full, and paced like every other.
    """
    n = 0
    async for chunk in chunks:
        n += chunk.size
        yield chunk
    silence = int(seconds * sample_rate)
    tail = silence + (-(n + silence)) % frame_samples
    if tail:
        yield np.zeros(tail, dtype=np.int16)
