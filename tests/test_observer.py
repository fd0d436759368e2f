"""TurnObserver's bookkeeping between the STT's finals and LiveKit's completed turns.

LiveKit completes turns one after another: a turn that ends while the previous one is still in
the turn handlers waits for it. The finals of that waiting turn are already heard, so the run
must not count them as delivered with the earlier turn, or it would end and close the session
under a turn LiveKit has yet to hand over (LiveKit then logs "skipping on_user_turn_completed,
speech scheduling is paused" and the words are lost).
"""

from __future__ import annotations

import asyncio

from livekit.agents import stt

from stt_agent import TranscriptFeed, Utterance
from stt_agent.handlers import TurnHandlers
from stt_agent.observer import TurnObserver
from stt_agent.progress import RunProgress


def _final(text: str, start: float, end: float) -> stt.SpeechEvent:
    return stt.SpeechEvent(
        type=stt.SpeechEventType.FINAL_TRANSCRIPT,
        alternatives=[stt.SpeechData(language="en", text=text, start_time=start, end_time=end)],
    )


async def test_a_turn_takes_only_its_own_finals_and_the_next_one_stays_open() -> None:
    progress = RunProgress(exact=True)
    feed = TranscriptFeed()
    delivered: list[Utterance] = []
    feed.subscribe(lambda e: delivered.append(e) if isinstance(e, Utterance) else None)
    observer = TurnObserver(feed=feed, handlers=TurnHandlers(), progress=progress, source="t")

    # Turn 1 was said in two finals; turn 2's final is heard before turn 1 reaches delivery.
    for event in (
        _final("And so my fellow", 0.0, 1.2),
        _final("Americans.", 1.2, 2.3),
        _final("Ask not!", 2.8, 4.4),
    ):
        observer._on_event(event)
    assert progress.finals == 3 and progress.turns_open == 3

    first = await observer.deliver("And so my fellow Americans.")
    assert (first.start, first.end) == (0.0, 2.3)
    assert progress.turns_open == 1, "turn 2 is heard but not delivered: the run must wait"

    second = await observer.deliver("Ask not!")
    assert (second.start, second.end) == (2.8, 4.4)
    assert progress.turns_open == 0 and progress.delivered == 2
    await asyncio.sleep(0)
    assert [u.text for u in delivered] == ["And so my fellow Americans.", "Ask not!"]
    await observer.aclose()


async def test_a_turn_whose_text_outnumbers_the_finals_takes_them_all() -> None:
    progress = RunProgress(exact=True)
    observer = TurnObserver(progress=progress, source="t")
    observer._on_event(_final("ask not what", 0.0, 1.0))
    utterance = await observer.deliver("ask not what your country")
    assert (utterance.start, utterance.end) == (0.0, 1.0)
    assert progress.turns_open == 0
    await observer.aclose()
