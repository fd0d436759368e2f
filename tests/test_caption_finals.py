"""Caption finals: the words before a pause are final at once, the turn ends later and holds them.

A real recording with pauses inside a sentence (the shipped LibriSpeech 2412 sample: "If the
reader will excuse me, [pause] I will say nothing of my antecedents, [pause] nor of...") is
played in real time through the local engine. Everything is checked by order in the feed and
by positions in the audio, never by wall-clock time.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from dataclasses import dataclass, field

import pytest

from benchmarks.scoring import corpus_wer
from stt_agent import CaptionFinal, TranscriptFeed, TranscriptView, Utterance, samples, transcribe
from stt_agent.feed import FeedEvent
from stt_agent.handlers import TurnHandlers

SAMPLE = "librispeech_2412"
WER_LIMIT = 0.10  # the engine makes one or two small errors on this clip, if any


@dataclass
class Turn:
    """One delivered turn with the caption finals and interims the feed showed before it."""

    utterance: Utterance
    captions: list[CaptionFinal] = field(default_factory=list)
    interims_between_captions: int = 0


@pytest.fixture(scope="module")
def realtime_run() -> tuple[list[FeedEvent], list[Utterance], list[str]]:
    """The sample played in real time: every feed event in order, the utterances the turn
    handler received, and the run's exports as text lines."""
    from stt_agent.engines import LocalSTT
    from stt_agent.engines.local_stt import CAPTION_FINAL_AFTER_S

    events: list[FeedEvent] = []
    handled: list[Utterance] = []
    handlers = TurnHandlers()
    handlers.add(lambda u: handled.append(u), name="record")

    async def run() -> list[str]:
        feed = TranscriptFeed()
        feed.subscribe(events.append)
        engine = LocalSTT(caption_final_after_s=CAPTION_FINAL_AFTER_S)
        await asyncio.wait_for(
            transcribe(
                str(samples.path(SAMPLE)),
                realtime=True,
                stt=engine,
                feed=feed,
                handlers=handlers,
                progress_bar=False,
            ),
            timeout=300,  # a hang guard only
        )
        return feed.to_text().splitlines()

    exported = asyncio.run(run())
    return events, handled, exported


def _turns(events: list[FeedEvent]) -> list[Turn]:
    turns: list[Turn] = []
    pending = Turn(Utterance("", final=True))
    for event in events:
        if isinstance(event, CaptionFinal):
            pending.captions.append(event)
        elif isinstance(event, Utterance) and not event.final:
            if pending.captions:  # an interim after a caption final, within the open turn
                pending.interims_between_captions += 1
        elif isinstance(event, Utterance):
            pending.utterance = event
            turns.append(pending)
            pending = Turn(Utterance("", final=True))
    assert not pending.captions, "a caption final that no turn delivered"
    return turns


def test_caption_finals_come_before_their_turn_ends_and_make_up_its_text(realtime_run):
    events, _, _ = realtime_run
    turns = _turns(events)
    assert turns
    for turn in turns:
        u = turn.utterance
        # Every word of a turn was shown as a caption final before the turn was delivered.
        assert turn.captions, u.text
        assert u.text == " ".join(c.text for c in turn.captions)
        assert u.start is not None and u.end is not None
        assert turn.captions[0].start == pytest.approx(u.start)
        assert turn.captions[-1].end == pytest.approx(u.end)
        # Caption finals follow each other in the audio, with no gap and no overlap.
        for before, after in zip(turn.captions, turn.captions[1:], strict=False):
            assert before.end == pytest.approx(after.start)
            assert before.received_at <= after.received_at

    # The pauses inside the first sentence are shorter than a turn's silence: its words were
    # final in parts, at those pauses, well before the turn's speech ended (audio positions).
    split = [t for t in turns if len(t.captions) >= 2]
    assert split, [t.utterance.text for t in turns]
    first = split[0]
    assert first.utterance.end is not None
    assert all(c.end is not None for c in first.captions)
    assert first.captions[0].end < first.utterance.end - 1.0  # type: ignore[operator]
    # Interims go on across the pause, for the words after the caption final.
    assert any(t.interims_between_captions for t in split)


def test_the_turns_text_is_the_recording_and_the_handler_gets_whole_turns(realtime_run):
    events, handled, exported = realtime_run
    turns = _turns(events)
    text = " ".join(t.utterance.text for t in turns)
    wer = corpus_wer([samples.info(SAMPLE).text], [text])
    print(f"WER {wer:.3%}: {text!r}")
    assert wer <= WER_LIMIT
    # One handler call per turn, with the turn's whole text (every caption final's words).
    assert [u.text for u in handled] == [t.utterance.text for t in turns]
    assert any(len(t.captions) >= 2 for t in turns)
    # Exports hold turns only: one line per turn, no caption finals.
    assert exported == [t.utterance.text for t in turns]


def test_transcript_view_shows_caption_finals_as_locked_text_until_the_turn_arrives():
    feed = TranscriptFeed()
    view = TranscriptView(feed)

    async def play(publish: Callable[[], None]) -> None:
        feed.bind()
        publish()
        await asyncio.sleep(0)  # the feed delivers on its home loop

    def shown() -> str:
        return str(view._interim.value)

    asyncio.run(play(lambda: feed.publish(CaptionFinal("If the reader will excuse me,"))))
    assert "stt-locked" in shown() and "If the reader will excuse me," in shown()
    assert view.text == ""  # not a turn yet
    asyncio.run(play(lambda: feed.publish(Utterance("I will say", final=False))))
    assert "If the reader will excuse me," in shown() and "I will say" in shown()
    asyncio.run(play(lambda: feed.publish(CaptionFinal("I will say nothing."))))
    assert "If the reader will excuse me, I will say nothing." in shown()
    turn = "If the reader will excuse me, I will say nothing."
    asyncio.run(play(lambda: feed.publish(Utterance(turn, final=True))))
    assert "stt-locked" not in shown() and "excuse" not in shown()
    assert view.text == turn
    assert feed.counts["caption"] == 2 and feed.counts["final"] == 1
    assert [json.loads(line)["text"] for line in feed.to_jsonl().splitlines()] == [turn]
    view.close()
