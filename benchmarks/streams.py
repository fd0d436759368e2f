"""How many real-time streams one process serves at once before any of them falls behind.

N local-mode runs of the same clip start together (the worst case: their turns end at the
same moments), each paced in real time, all through one `LocalSTT` instance and so one
loaded model, whose decoder batches their decodes (`stt_agent.engines.batching`).

N keeps up when every run finishes with its whole transcript (WER within 0.15 of a lone
run's) and none of its finals comes more than 1 s later than a lone stream's would: every
EOS -> final is at most the N=1 median plus `KEEP_UP_BEHIND_MS`.

Memory: the process's resident set is sampled every 50 ms during each N; the cost of an extra
stream is the growth of its peak from N=1 to the largest N, divided by the extra streams.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

from stt_agent.engines import LocalSTT, load_whisper

from .clips import Clip
from .latency import Latencies, measure, percentile
from .runs import RunRecord, run_kit
from .scoring import corpus_wer, whisper_normalise

KEEP_UP_BEHIND_MS = 1000.0
_COMPLETE_WER_MARGIN = 0.15
_FINISH_GRACE_S = 4.0  # after the audio (and its 1 s of trailing silence) has been played
_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


def rss_mb() -> float:
    """Resident memory of this process now (Linux), in MB."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * _PAGE / 2**20
    except OSError:
        return 0.0


class _RssPeak:
    """`async with _RssPeak() as peak:` ... `peak.mb`: the highest RSS seen meanwhile."""

    def __init__(self) -> None:
        self.mb = rss_mb()
        self._task: asyncio.Task[None] | None = None

    async def _sample(self) -> None:
        while True:
            self.mb = max(self.mb, rss_mb())
            await asyncio.sleep(0.05)

    async def __aenter__(self) -> _RssPeak:
        self._task = asyncio.create_task(self._sample())
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._task is not None
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        self.mb = max(self.mb, rss_mb())


@dataclass
class StreamsResult:
    clip: str
    max_streams: int
    by_count: dict[int, dict[str, object]] = field(default_factory=dict)
    memory_per_stream_mb: float | None = None


async def _concurrent(clip: Clip, n: int, stt: LocalSTT) -> list[RunRecord | None]:
    """N real-time runs at once; a run that has not finished in time counts as None."""
    limit = clip.duration_s + 1.0 + _FINISH_GRACE_S

    async def one() -> RunRecord | None:
        try:
            return await asyncio.wait_for(run_kit(clip, realtime=True, stt=stt), limit)
        except TimeoutError:
            return None

    return list(await asyncio.gather(*(one() for _ in range(n))))


async def max_realtime_streams(
    clip: Clip, counts: list[int], *, progress: Callable[[str], None] = lambda _: None
) -> StreamsResult:
    """Runs N = `counts` (ascending, starting at 1) until one falls behind."""
    shared = LocalSTT()
    shared.prewarm()
    scheduler = load_whisper(shared.model).scheduler
    result = StreamsResult(clip.name, 0)
    solo_p50: float | None = None
    solo_wer = 0.0
    rss_at: dict[int, float] = {}
    for n in counts:
        progress(f"streams: {n} concurrent real-time run(s) of {clip.name}, one model")
        batches_before = Counter(scheduler.batch_sizes)
        async with _RssPeak() as peak:
            records = await _concurrent(clip, n, shared)
        rss_at[n] = peak.mb
        lat = Latencies()
        wers = []
        for r in records:
            if r is not None:
                lat.extend(measure(r))
                wers.append(corpus_wer([clip.reference], [r.text], whisper_normalise))
        if n == counts[0]:
            solo_p50 = percentile(lat.eos_to_final_ms, 50)
            solo_wer = max(wers, default=0.0)
        worst = max(lat.eos_to_final_ms, default=None)
        behind = None if worst is None or solo_p50 is None else worst - solo_p50
        complete = sum(w <= solo_wer + _COMPLETE_WER_MARGIN for w in wers)
        keeps_up = complete == n and behind is not None and behind <= KEEP_UP_BEHIND_MS
        batches = Counter(scheduler.batch_sizes)
        batches.subtract(batches_before)
        result.by_count[n] = {
            "keeps_up": keeps_up,
            "runs_complete": complete,
            "eos_to_final_ms_p50": percentile(lat.eos_to_final_ms, 50),
            "eos_to_final_ms_p95": percentile(lat.eos_to_final_ms, 95),
            "eos_to_final_ms_max": worst,
            "behind_ms_max": behind,
            "first_interim_ms_p50": percentile(lat.first_interim_ms, 50),
            "peak_rss_mb": round(peak.mb, 1),
            "batch_sizes": {str(k): v for k, v in sorted(batches.items()) if v > 0},
        }
        if not keeps_up:
            break  # more streams only fall further behind on the same cores
        result.max_streams = n
    if len(rss_at) > 1:
        low, high = min(rss_at), max(rss_at)
        result.memory_per_stream_mb = round((rss_at[high] - rss_at[low]) / (high - low), 1)
    return result
