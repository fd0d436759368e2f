"""Example turn handlers: each is a plain function of an `Utterance` (or makes one).

Register them on a running agent with `handle.on_turn(...)`; see `handlers` for what a
handler may return and how it is isolated.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from .feed import Utterance
from .handlers import Handler

__all__ = ["append_jsonl", "keyword_alert", "redact", "words_per_minute"]


def keyword_alert(keywords: Iterable[str]) -> Handler:
    """Annotate utterances that mention any of `keywords` (whole words, any case)."""
    words = [k.lower() for k in keywords]
    pattern = re.compile(r"\b(" + "|".join(map(re.escape, words)) + r")\b", re.I)

    def keyword_alert(u: Utterance) -> dict[str, Any] | None:
        hits = sorted({m.group(1).lower() for m in pattern.finditer(u.text)})
        return {"alert": hits} if hits else None

    return keyword_alert


_DEFAULT_REDACTIONS = (
    r"\b\d[\d -]{6,}\d\b",  # card, phone and account numbers
    r"\b[\w.+-]+@[\w-]+\.[\w.]+\b",  # e-mail addresses
)


def redact(
    words: Iterable[str] = (),
    *,
    patterns: Iterable[str] = _DEFAULT_REDACTIONS,
    keep_original: bool = False,
) -> Handler:
    """Replace the given words and patterns with █ blocks (returns the new text).

    The redacted words are gone: the feed, its exports, `append_jsonl`, the views and the saved
    notebook hold only the blocks. `keep_original=True` keeps the unredacted text as the
    utterance's `original_text`, which the view shows as "(was: …)" and every export writes:
    for trying out a word list on recordings you may keep, never for data you must not.
    """
    parts = [*patterns, *(r"\b" + re.escape(w) + r"\b" for w in words)]
    pattern = re.compile("|".join(parts), re.I) if parts else None

    def redact(u: Utterance) -> str | None:
        if pattern is None:
            return None
        new = pattern.sub(lambda m: "█" * len(m.group(0)), u.text)
        if new == u.text:
            return None
        if keep_original and u.original_text is None:
            u.original_text = u.text
        return new

    return redact


def words_per_minute(u: Utterance) -> dict[str, Any] | None:
    """Speaking rate of the utterance, from its audio timestamps."""
    if u.start is None or u.end is None or u.end <= u.start:
        return None
    words = len(u.text.split())
    return {"wpm": round(words / ((u.end - u.start) / 60.0))}


def append_jsonl(path: str | Path) -> Handler:
    """Append every utterance to a JSON Lines file (one object per line)."""
    target = Path(path)
    lock = threading.Lock()

    def append_jsonl(u: Utterance) -> None:
        line = json.dumps(u.to_dict(), ensure_ascii=False)
        with lock, target.open("a", encoding="utf-8") as f:
            f.write(line + "\n")

    return append_jsonl
