"""Drift-free pacing and trailing silence (stt_agent.pacing), on a simulated clock: no timing."""

from __future__ import annotations

import numpy as np
import pytest

from stt_agent.pacing import Pacer, with_trailing_silence

FRAME_S = 0.02


class LateClock:
    """A clock whose every sleep wakes `late_s` after the time asked for (a busy loop)."""

    def __init__(self, late_s: float, now: float = 100.0) -> None:
        self.now = now
        self.late_s = late_s
        self.wake_ups: list[float] = []  # the times asked for

    def __call__(self) -> float:
        return self.now

    async def sleep(self, delay: float) -> None:
        self.wake_ups.append(self.now + delay)
        self.now += delay + self.late_s


async def test_late_wake_ups_do_not_add_up():
    clock = LateClock(late_s=0.035)  # later than a frame, every time
    pacer = Pacer(clock=clock, sleep=clock.sleep)
    released = []
    for i in range(3000):  # one minute of 20 ms frames
        await pacer.wait(i * FRAME_S)
        released.append(clock.now - (100.0 + i * FRAME_S))
    # every deadline is counted from the first frame, never from the last wake-up
    frames_in = [(w - 100.0) / FRAME_S for w in clock.wake_ups]
    assert all(abs(f - round(f)) < 1e-6 for f in frames_in)
    # a frame is never early, and never more than one late wake-up behind, after a minute too
    assert min(released) >= 0
    assert max(released) <= 0.035 + 1e-9
    # late wake-ups are caught up on the following frames: far fewer sleeps than frames
    assert len(clock.wake_ups) < 3000 * 0.7


async def test_lead_releases_ahead_of_real_time():
    clock = LateClock(late_s=0.0)
    pacer = Pacer(lead_s=0.5, clock=clock, sleep=clock.sleep)
    for i in range(100):
        await pacer.wait(i * FRAME_S)
    assert pacer.start == 100.0
    # the first 0.5 s go at once, then each frame half a second before it is spoken
    assert clock.wake_ups[0] == pytest.approx(100.0 + 26 * FRAME_S - 0.5)
    assert clock.now == pytest.approx(100.0 + 99 * FRAME_S - 0.5)
    assert pacer.wall_time_of(1.0) == 101.0


async def test_unpaced_never_waits_but_knows_its_start():
    clock = LateClock(late_s=0.0)
    pacer = Pacer(realtime=False, clock=clock, sleep=clock.sleep)
    assert pacer.start is None
    for i in range(50):
        await pacer.wait(i * FRAME_S)
    assert clock.wake_ups == [] and pacer.start == 100.0
    assert pacer.wall_time_of(0.5) is None  # audio time says nothing about the clock here


async def _chunks(*sizes: int):
    for n in sizes:
        yield np.full(n, 7, dtype=np.int16)


async def test_trailing_silence_ends_on_a_whole_frame():
    out = [
        c
        async for c in with_trailing_silence(
            _chunks(1000, 333), 1.0, sample_rate=16_000, frame_samples=320
        )
    ]
    assert [c.size for c in out[:2]] == [1000, 333] and all((c == 7).all() for c in out[:2])
    tail = out[2]
    assert not tail.any() and tail.dtype == np.int16
    assert (1333 + tail.size) % 320 == 0
    assert 16_000 <= tail.size < 16_000 + 320  # at least a second, at most one frame more


async def test_no_silence_asked_and_whole_frames_adds_nothing():
    out = [
        c
        async for c in with_trailing_silence(
            _chunks(640), 0.0, sample_rate=16_000, frame_samples=320
        )
    ]
    assert [c.size for c in out] == [640]
