"""Redaction redacts: after `redact([...])` the words are nowhere a learner saves or shares.

A real run over the JFK recording ("And so, my fellow Americans, ask not what your country can
do for you..."), with the redactor and `append_jsonl` registered as notebook 04 does: the JSON
Lines file, every export of the feed, the transcript view's widget state and the saved copy
of it that a notebook keeps must hold only the █ blocks. Keeping the original is a choice the
code makes explicitly (`keep_original=True`), and then it is kept.
"""

from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path

import stt_agent
from stt_agent import TranscriptView, Utterance

REDACTED = ["Americans", "country"]


async def _redacted_run(
    jfk: Path, local_stt: object, saved: Path, **options: bool
) -> dict[str, str]:
    """Transcribe JFK with the redactor and the JSONL saver: every place the words can end up,
    by name."""
    handle = await stt_agent.start_local(jfk, realtime=False, stt=local_stt)
    # registered before this coroutine next yields, so before the first utterance is delivered
    handle.on_turn(stt_agent.redact(REDACTED, **options))
    handle.on_turn(stt_agent.append_jsonl(saved))
    view = TranscriptView(handle.feed, interim_hz=1e6)
    finals = await asyncio.wait_for(handle.done(), 120)
    await handle.stop()
    assert finals and any("█" in u.text for u in finals), [u.text for u in finals]

    feed = handle.feed
    copy = view._saved_copy()
    places = {
        "append_jsonl's file": saved.read_text(encoding="utf-8"),
        "feed.to_jsonl()": feed.to_jsonl(),
        "feed.to_text()": feed.to_text(),
        "feed.to_srt()": feed.to_srt(),
        "Utterance.to_dict()": json.dumps([u.to_dict() for u in feed.utterances]),
        "saved copy, text/plain": copy["text/plain"],
        "saved copy, text/html": copy["text/html"],
    }
    for i, widget in enumerate(view._state_widgets()):
        places[f"widget state {i}"] = json.dumps(widget.get_state(), ensure_ascii=False)
    view.close()
    return places


def _mentions(places: dict[str, str]) -> dict[str, str]:
    words = re.compile(r"\b(" + "|".join(REDACTED) + r")\b", re.I)
    return {name: text[:300] for name, text in places.items() if words.search(text)}


async def test_redacted_words_reach_no_file_export_view_or_saved_copy(jfk, local_stt, tmp_path):
    places = await _redacted_run(jfk, local_stt, tmp_path / "utterances.jsonl")
    assert _mentions(places) == {}
    for line in (tmp_path / "utterances.jsonl").read_text(encoding="utf-8").splitlines():
        assert json.loads(line)["original_text"] is None


async def test_keep_original_is_an_explicit_choice(jfk, local_stt, tmp_path):
    places = await _redacted_run(jfk, local_stt, tmp_path / "kept.jsonl", keep_original=True)
    # asked for, so kept and shown
    assert "Americans" in places["append_jsonl's file"]
    assert re.search(r"\(was: [^)]*\bAmericans\b", places["saved copy, text/html"])


def test_a_handler_replacing_text_drops_the_original_unless_it_keeps_it():
    redact = stt_agent.redact(["Americans"])
    u = Utterance(text="And so, my fellow Americans.", final=True)
    assert redact(u) == "And so, my fellow █████████." and u.original_text is None
    kept = Utterance(text="And so, my fellow Americans.", final=True)
    stt_agent.redact(["Americans"], keep_original=True)(kept)
    assert kept.original_text == "And so, my fellow Americans."
