"""Who said what: speaker names, colours and counts in the views, and in the exports."""

from __future__ import annotations

import json
import re

from stt_agent import StatusView, TranscriptFeed, TranscriptView, Utterance
from stt_agent.handle import AgentHandle
from stt_agent.ui.speakers import speaker_colour


def _said(feed: TranscriptFeed, who: str, text: str, start: float, final: bool = True) -> None:
    feed.publish(Utterance(text=text, final=final, participant=who, start=start, end=start + 1))


def _colours_by_speaker(html: str) -> dict[str, set[str]]:
    found: dict[str, set[str]] = {}
    for who, colour in re.findall(r"data-participant='([^']+)' style='color:(#[0-9a-f]{6})'", html):
        found.setdefault(who, set()).add(colour)
    return found


async def test_each_speaker_has_a_name_a_colour_and_a_count():
    feed = TranscriptFeed()
    feed.bind()
    view = TranscriptView(feed, interim_hz=1e6)  # render every interim, no throttling
    for i, who in enumerate(["ada", "grace", "ada"]):
        _said(feed, who, f"sentence {i} from {who}", float(i))
    _said(feed, "grace", "still talk", 3.0, final=False)
    _said(feed, "ada", "and I am", 3.0, final=False)

    assert feed.speakers == {"ada": 2, "grace": 1}
    colours = _colours_by_speaker(view._list.value)
    assert set(colours) == {"ada", "grace"}
    assert all(len(c) == 1 for c in colours.values())  # one colour per speaker, every row
    assert colours["ada"] != colours["grace"]
    assert colours["ada"] == {speaker_colour(feed, "ada")}
    summary = re.sub(r"<[^>]+>", "", view._summary.value)
    assert "3 utterances (ada 2, grace 1)" in summary
    # two people talking at once: one interim line each, named
    interim = re.sub(r"<[^>]+>", "", view._interim.value.replace("<br>", "\n"))
    assert interim.splitlines() == ["grace: still talk", "ada: and I am"]
    _said(feed, "grace", "still talking", 3.0)
    interim = re.sub(r"<[^>]+>", "", view._interim.value)
    assert interim == "ada: and I am"


async def test_local_mode_keeps_the_plain_look():
    feed = TranscriptFeed()
    feed.bind()
    view = TranscriptView(feed, interim_hz=1e6)
    feed.publish(Utterance(text="hello there", final=True, start=0.0, end=1.0))
    feed.publish(Utterance(text="and you", final=False))
    assert feed.speakers == {"local": 1}
    assert "(local" not in re.sub(r"<[^>]+>", "", view._summary.value)
    assert re.sub(r"<[^>]+>", "", view._interim.value) == "and you"
    assert feed.to_text() == "hello there\n"


async def test_status_view_counts_per_speaker_and_shows_who_left():
    handle = AgentHandle("room", TranscriptFeed())
    view = StatusView(handle)
    handle.report(state="in_job", room="workshop", participants=("ada", "grace"))
    _said(handle.feed, "ada", "one", 0.0)
    _said(handle.feed, "ada", "two", 1.0)
    _said(handle.feed, "bob", "bye", 0.0)  # transcribed earlier, gone now
    view.refresh()
    speakers = re.search(r"<td class='stt-speakers'>(.*?)</td>", view._badge.value)
    assert speakers is not None
    text = re.sub(r"<[^>]+>", "", speakers.group(1))
    assert text == "ada 2, bob 1 (left), grace 0"
    shown = _colours_by_speaker(view._badge.value)
    assert shown["ada"] == {speaker_colour(handle.feed, "ada")}  # same colour as the transcript


async def test_exports_keep_the_speaker():
    feed = TranscriptFeed()
    feed.bind()
    _said(feed, "ada", "Ask not.", 0.5)
    _said(feed, "grace", "If the reader will excuse me.", 0.25)
    assert feed.to_text() == "ada: Ask not.\ngrace: If the reader will excuse me.\n"
    srt = feed.to_srt()
    assert "00:00:00,500 --> 00:00:01,500\nada: Ask not." in srt
    assert "grace: If the reader will excuse me." in srt
    rows = [json.loads(line) for line in feed.to_jsonl().splitlines()]
    assert [r["participant"] for r in rows] == ["ada", "grace"]
