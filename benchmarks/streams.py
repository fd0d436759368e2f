"""How many real-time streams the kit serves at once before it falls behind.

N local-mode runs of the same clip start together, each paced in real time. N "keeps up"
when every run delivers all its utterances (as many as a solo fast run of the clip) and the
p95 of EOS -> final over all of them is at most 1.5 s.

The kit shares one model per process; whether one `LocalSTT` *instance* can serve several
sessions is checked first (`shared_instance_ok`): two runs share one, and must each finish
soon after their audio does, with all their utterances.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field

from stt_agent.engines import LocalSTT

from .clips import Clip
from .latency import Latencies, measure, percentile
from .runs import RunRecord, run_kit

KEEP_UP_P95_MS = 1500.0
_FINISH_GRACE_S = 4.0  # after the audio (and its 1 s of trailing silence) has been played


@dataclass
class StreamsResult:
    clip: str
    shared_instance_ok: bool | None  # None: not checked
    max_streams: int
    by_count: dict[int, dict[str, object]] = field(default_factory=dict)


async def _concurrent(
    clip: Clip, n: int, make_stt: Callable[[], LocalSTT]
) -> list[RunRecord | None]:
    """N real-time runs at once; a run that has not finished in time counts as None."""
    limit = clip.duration_s + 1.0 + _FINISH_GRACE_S

    async def one() -> RunRecord | None:
        try:
            return await asyncio.wait_for(run_kit(clip, realtime=True, stt=make_stt()), limit)
        except TimeoutError:
            return None

    return list(await asyncio.gather(*(one() for _ in range(n))))


async def shared_instance_works(clip: Clip, expected_finals: int) -> bool:
    shared = LocalSTT()
    records = await _concurrent(clip, 2, lambda: shared)
    return all(r is not None and len(r.finals) >= expected_finals for r in records)


async def max_realtime_streams(
    clip: Clip,
    counts: list[int],
    expected_finals: dict[str, int],
    *,
    check_clip: Clip | None = None,
    progress: Callable[[str], None] = lambda _: None,
) -> StreamsResult:
    """`expected_finals`: clip name -> finals of a solo run (of `clip` and `check_clip`).
    Without a `check_clip` the shared-instance check is skipped: one LocalSTT per run."""
    shared_ok = False
    if check_clip is not None:
        progress(f"streams: can one LocalSTT instance serve 2 sessions? ({check_clip.name})")
        shared_ok = await shared_instance_works(check_clip, expected_finals[check_clip.name])
    shared = LocalSTT()
    make_stt = (lambda: shared) if shared_ok else LocalSTT
    expected = expected_finals[clip.name]
    result = StreamsResult(clip.name, shared_ok if check_clip is not None else None, 0)
    for n in counts:
        progress(f"streams: {n} concurrent real-time run(s) of {clip.name}")
        records = await _concurrent(clip, n, make_stt)
        lat = Latencies()
        complete = 0
        for r in records:
            if r is not None:
                lat.extend(measure(r))
                complete += len(r.finals) >= expected
        p95 = percentile(lat.eos_to_final_ms, 95)
        keeps_up = complete == n and p95 is not None and p95 <= KEEP_UP_P95_MS
        result.by_count[n] = {
            "keeps_up": keeps_up,
            "runs_complete": complete,
            "eos_to_final_ms_p50": percentile(lat.eos_to_final_ms, 50),
            "eos_to_final_ms_p95": p95,
        }
        if not keeps_up:
            break  # more streams only fall further behind on the same cores
        result.max_streams = n
    return result
