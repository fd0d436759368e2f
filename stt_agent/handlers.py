"""Turn handlers: plain or async functions of an `Utterance`, swappable while the agent runs.

A handler may return:
* `None` – nothing to add;
* a `dict` – annotations shown next to the text (e.g. `{"wpm": 152}`);
* a `str` – replacement text (e.g. a redacted transcript); later handlers see the new text.

Each handler is isolated: an exception is recorded on the utterance and counted, a handler
slower than its timeout is abandoned, and the transcript carries on either way.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import re
import threading
from collections.abc import Awaitable, Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .feed import Utterance

__all__ = [
    "HandlerStats",
    "TurnHandlers",
    "append_jsonl",
    "keyword_alert",
    "redact",
    "words_per_minute",
]

Handler = Callable[[Utterance], Any | Awaitable[Any]]
DEFAULT_TIMEOUT_S = 2.0

# Synchronous handlers run here, so a `time.sleep` in one cannot freeze the event loop, and
# a timed-out one only ties up a spare thread.
_sync_pool = ThreadPoolExecutor(max_workers=4, thread_name_prefix="stt-agent-handler")


@dataclass
class HandlerStats:
    calls: int = 0
    errors: int = 0
    timeouts: int = 0
    last_error: str | None = None


class TurnHandlers:
    """An ordered, thread-safe registry of turn handlers, keyed by name."""

    def __init__(self, timeout_s: float = DEFAULT_TIMEOUT_S) -> None:
        self.timeout_s = timeout_s
        self._handlers: dict[str, Handler] = {}
        self._lock = threading.Lock()
        self.stats: dict[str, HandlerStats] = {}

    def add(self, fn: Handler, *, name: str | None = None) -> Handler:
        """Add `fn`, or replace the handler registered under the same name; returns `fn`
        so it can be used as a decorator."""
        if not callable(fn):
            raise TypeError(f"a turn handler must be callable, got {type(fn).__name__}")
        key = name or _name_of(fn)
        with self._lock:
            self._handlers[key] = fn
            self.stats.setdefault(key, HandlerStats())
        return fn

    def remove(self, fn_or_name: Handler | str) -> None:
        with self._lock:
            if isinstance(fn_or_name, str):
                key = fn_or_name
            else:
                key = next((k for k, f in self._handlers.items() if f is fn_or_name), "")
                key = key or _name_of(fn_or_name)
            if key not in self._handlers:
                raise KeyError(f"no turn handler named {key!r}; have {list(self._handlers)}")
            del self._handlers[key]

    def clear(self) -> None:
        with self._lock:
            self._handlers.clear()

    @property
    def names(self) -> list[str]:
        with self._lock:
            return list(self._handlers)

    def snapshot(self) -> list[tuple[str, Handler]]:
        with self._lock:
            return list(self._handlers.items())

    @property
    def error_count(self) -> int:
        return sum(s.errors + s.timeouts for s in self.stats.values())

    async def run(self, utterance: Utterance) -> Utterance:
        """Run every handler registered now, in order, on `utterance` (changed in place)."""
        for name, fn in self.snapshot():
            stats = self.stats.setdefault(name, HandlerStats())
            stats.calls += 1
            try:
                result = await asyncio.wait_for(_call(fn, utterance), self.timeout_s)
            except TimeoutError:
                stats.timeouts += 1
                message = f"{name}: timed out after {self.timeout_s:g} s"
                stats.last_error = message
                utterance.handler_errors.append(message)
                continue
            except Exception as e:
                stats.errors += 1
                message = f"{name}: {type(e).__name__}: {e}"
                stats.last_error = message
                utterance.handler_errors.append(message)
                continue
            _apply(utterance, name, result)
        return utterance

    def __repr__(self) -> str:
        return f"TurnHandlers({self.names}, timeout_s={self.timeout_s})"


async def _call(fn: Handler, utterance: Utterance) -> Any:
    if inspect.iscoroutinefunction(fn) or inspect.iscoroutinefunction(
        getattr(fn, "__call__", None)  # noqa: B004 - async callable objects
    ):
        return await fn(utterance)  # type: ignore[misc]
    result = await asyncio.get_running_loop().run_in_executor(_sync_pool, fn, utterance)
    if inspect.isawaitable(result):
        return await result
    return result


def _apply(utterance: Utterance, name: str, result: Any) -> None:
    if result is None:
        return
    if isinstance(result, str):
        if utterance.original_text is None:
            utterance.original_text = utterance.text
        utterance.text = result
    elif isinstance(result, dict):
        utterance.annotations.update(result)
    else:
        utterance.annotations[name] = result


def _name_of(fn: Callable[..., Any]) -> str:
    return getattr(fn, "__name__", None) or type(fn).__name__


# --- examples ------------------------------------------------------------------------------


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


def redact(words: Iterable[str] = (), *, patterns: Iterable[str] = _DEFAULT_REDACTIONS) -> Handler:
    """Replace the given words and patterns with █ blocks (returns the new text)."""
    parts = [*patterns, *(r"\b" + re.escape(w) + r"\b" for w in words)]
    pattern = re.compile("|".join(parts), re.I) if parts else None

    def redact(u: Utterance) -> str | None:
        if pattern is None:
            return None
        new = pattern.sub(lambda m: "█" * len(m.group(0)), u.text)
        return new if new != u.text else None

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
