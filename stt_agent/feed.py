"""Utterances and the feed that carries them from agent threads to the notebook.

Room-mode jobs run on their own thread and event loop; widgets may only be touched from the
kernel's loop. `TranscriptFeed.publish` may be called from anywhere: it hops every event onto
the feed's home loop with `call_soon_threadsafe`, and subscribers only ever run there.
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
import time
import uuid
from collections import deque
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, cast

from .loops import call_on

__all__ = ["CaptionFinal", "MetricsEvent", "TranscriptFeed", "Utterance"]

logger = logging.getLogger("stt_agent.feed")


@dataclass
class Utterance:
    """One piece of transcript: interim (still changing) or final (one finished turn)."""

    text: str
    final: bool
    participant: str = "local"
    start: float | None = None  # seconds of audio since the stream began
    end: float | None = None
    latency_s: float | None = None  # end of speech -> final text delivered
    language: str | None = None
    annotations: dict[str, Any] = field(default_factory=dict)
    source: str | None = None  # file name or room name
    original_text: str | None = None  # only when a handler keeps what it replaced
    handler_errors: list[str] = field(default_factory=list)
    id: str = field(default_factory=lambda: uuid.uuid4().hex[:12])
    received_at: float = field(default_factory=time.time)

    def to_dict(self) -> dict[str, Any]:
        # Field by field rather than `asdict`: its deep copy fails on whatever a handler may
        # have put into `annotations` by hand (a generator, a lock), and exports must not.
        data = {f.name: getattr(self, f.name) for f in fields(self)}
        data["annotations"] = {str(k): _jsonable(v) for k, v in self.annotations.items()}
        data["handler_errors"] = [str(e) for e in self.handler_errors]
        return data


@dataclass(frozen=True)
class CaptionFinal:
    """Words of the turn still open that will not change any more: a final transcript.

    The engine sends one for the speech so far once a short pause confirms it (the local
    engine after 0.1 s of silence; a streaming service whenever it finalises), while the turn
    ends later and is delivered as one `Utterance` holding every caption final's words. Views
    show these as locked text at once; exports hold turns only."""

    text: str
    participant: str = "local"
    start: float | None = None  # seconds of audio since the stream began
    end: float | None = None
    source: str | None = None
    received_at: float = field(default_factory=time.time)
    latency_s: float | None = None  # end of its speech -> this caption final delivered


@dataclass(frozen=True)
class MetricsEvent:
    """STT or end-of-utterance metrics from LiveKit's `metrics_collected` event."""

    kind: str  # "stt" or "eou"
    values: dict[str, Any]
    received_at: float = field(default_factory=time.time)


FeedEvent = Utterance | CaptionFinal | MetricsEvent
Callback = Callable[[FeedEvent], Any]

_CLOSED = object()


class TranscriptFeed:
    """Thread-safe pub/sub of utterances and metrics, delivered on one event loop.

    * `feed.subscribe(fn)` calls `fn(event)` for every event (returns an unsubscribe function);
    * `async for event in feed:` iterates from now on, until `feed.close()`;
    * `feed.utterances` keeps the last `history` final utterances, oldest first;
    * `feed.speakers` counts final utterances per participant, in order of first appearance
      (room mode: one entry per transcribed participant; local mode: "local").
    """

    def __init__(self, history: int = 500, *, loop: asyncio.AbstractEventLoop | None = None):
        self._loop = loop
        self._lock = threading.Lock()
        self._subscribers: list[Callback] = []
        self._queues: list[asyncio.Queue[object]] = []
        self.utterances: deque[Utterance] = deque(maxlen=history)
        self.interim: Utterance | None = None
        self.metrics: deque[MetricsEvent] = deque(maxlen=history)
        self.counts = {
            "final": 0,
            "interim": 0,
            "caption": 0,
            "metrics": 0,
            "subscriber_errors": 0,
        }
        self.speakers: dict[str, int] = {}
        self.closed = False

    # --- the home loop ------------------------------------------------------------------

    def bind(self, loop: asyncio.AbstractEventLoop | None = None) -> None:
        """Deliver on `loop` (default: the running loop). Done on first use from a loop."""
        self._loop = loop or asyncio.get_running_loop()

    def _home(self) -> asyncio.AbstractEventLoop | None:
        if self._loop is None or self._loop.is_closed():
            try:
                self._loop = asyncio.get_running_loop()
            except RuntimeError:
                return None
        return self._loop

    # --- publishing (any thread) --------------------------------------------------------

    def publish(self, event: FeedEvent) -> None:
        call_on(self._home(), lambda: self._dispatch(event))

    def _dispatch(self, event: FeedEvent) -> None:
        if isinstance(event, Utterance):
            if event.final:
                self.utterances.append(event)
                self.interim = None
                self.counts["final"] += 1
                self.speakers[event.participant] = self.speakers.get(event.participant, 0) + 1
            else:
                self.interim = event
                self.counts["interim"] += 1
        elif isinstance(event, CaptionFinal):
            self.counts["caption"] += 1
        else:
            self.metrics.append(event)
            self.counts["metrics"] += 1
        with self._lock:
            subscribers = list(self._subscribers)
            queues = list(self._queues)
        for fn in subscribers:
            try:
                fn(event)
            except Exception:  # a broken view must not stop the transcript
                self.counts["subscriber_errors"] += 1
                logger.exception("feed subscriber %r failed", fn)
        for q in queues:
            q.put_nowait(event)

    # --- consuming (home loop) ----------------------------------------------------------

    def subscribe(self, fn: Callback) -> Callable[[], None]:
        with self._lock:
            self._subscribers.append(fn)

        def unsubscribe() -> None:
            with self._lock:
                if fn in self._subscribers:
                    self._subscribers.remove(fn)

        return unsubscribe

    async def __aiter__(self) -> AsyncIterator[FeedEvent]:
        self._home()
        queue: asyncio.Queue[object] = asyncio.Queue()
        with self._lock:
            self._queues.append(queue)
        try:
            while not self.closed or not queue.empty():
                item = await queue.get()
                if item is _CLOSED:
                    return
                yield cast(FeedEvent, item)  # anything else in the queue is an event
        finally:
            with self._lock:
                if queue in self._queues:
                    self._queues.remove(queue)

    def close(self) -> None:
        """End every `async for` over the feed (history and subscribers stay)."""

        def _close() -> None:
            self.closed = True
            with self._lock:
                queues = list(self._queues)
            for q in queues:
                q.put_nowait(_CLOSED)

        home = self._home()
        # A closed home loop has no readers left to wake, but the feed still says it closed.
        call_on(None if home is None or home.is_closed() else home, _close)

    # --- export -------------------------------------------------------------------------

    def to_jsonl(self, path: str | Path | None = None) -> str:
        text = "".join(
            json.dumps(u.to_dict(), ensure_ascii=False, default=repr) + "\n"
            for u in self.utterances
        )
        if path is not None:
            Path(path).write_text(text, encoding="utf-8")
        return text

    def _spoken(self, u: Utterance) -> str:
        # who said it, once more than one voice can be in the transcript (room mode)
        return u.text if u.participant == "local" else f"{u.participant}: {u.text}"

    def to_text(self, path: str | Path | None = None) -> str:
        """One line per final utterance; room mode prefixes the speaker ("ada: ...")."""
        text = "".join(self._spoken(u) + "\n" for u in self.utterances)
        if path is not None:
            Path(path).write_text(text, encoding="utf-8")
        return text

    def to_srt(self, path: str | Path | None = None) -> str:
        """SubRip subtitles; room mode names the speaker in each cue ("ada: ...")."""
        blocks = []
        for i, u in enumerate(self.utterances, 1):
            start, end = u.start or 0.0, u.end if u.end is not None else (u.start or 0.0)
            blocks.append(f"{i}\n{_srt_time(start)} --> {_srt_time(end)}\n{self._spoken(u)}\n")
        text = "\n".join(blocks)
        if path is not None:
            Path(path).write_text(text, encoding="utf-8")
        return text

    def __repr__(self) -> str:
        return (
            f"TranscriptFeed({self.counts['final']} final, {self.counts['interim']} interim, "
            f"history={len(self.utterances)}/{self.utterances.maxlen})"
        )


def _srt_time(seconds: float) -> str:
    ms = round(max(0.0, seconds) * 1000)
    h, rem = divmod(ms, 3_600_000)
    m, rem = divmod(rem, 60_000)
    s, ms = divmod(rem, 1000)
    return f"{h:02d}:{m:02d}:{s:02d},{ms:03d}"


def _jsonable(value: Any) -> Any:
    try:
        json.dumps(value)
        return value
    except (TypeError, ValueError):
        return repr(value)
