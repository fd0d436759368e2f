"""The live transcript as an ipywidgets view.

The view subscribes to a `TranscriptFeed`, whose callbacks always run on the kernel's event
loop, so its widgets are only ever touched from there. The DOM stays bounded: it shows the last
`max_rows` utterances (the feed keeps more), and interim text is rendered at most `interim_hz`
times a second, which keeps an hour of speech responsive. A saved notebook shows the same
words as plain text and HTML (see `saved_copy`).
"""

from __future__ import annotations

import html
import threading
import time
from datetime import datetime

import ipywidgets as widgets

from ..feed import CaptionFinal, FeedEvent, TranscriptFeed, Utterance
from .saved_copy import ReadableAfterwards
from .speakers import speaker_label

__all__ = ["TranscriptView"]

# column-reverse keeps the scroll position pinned to the newest row with no JavaScript.
_LIST_STYLE = (
    "display:flex;flex-direction:column-reverse;overflow-y:auto;max-height:{height}px;"
    "font-family:var(--jp-content-font-family,sans-serif);font-size:13px;line-height:1.45"
)

_LOCKED = "class='stt-locked' style='color:#1f2328;font-style:normal'"


def _row(u: Utterance, feed: TranscriptFeed) -> str:
    when = datetime.fromtimestamp(u.received_at).strftime("%H:%M:%S")
    bits = [f"<span style='color:#57606a'>{when}</span>"]
    if u.participant:
        bits.append(speaker_label(feed, u.participant))
    if u.start is not None and u.end is not None:
        bits.append(f"<span style='color:#57606a'>{u.start:.1f}–{u.end:.1f} s</span>")
    if u.latency_s is not None:
        bits.append(f"<span style='color:#57606a'>{u.latency_s * 1000:.0f} ms</span>")
    text = html.escape(u.text)
    if u.original_text is not None:
        was = html.escape(u.original_text)
        text += f" <span style='color:#8c959f' title='original'>(was: {was})</span>"
    notes = "".join(
        f" <code style='background:#ddf4ff'>{html.escape(str(k))}: {html.escape(str(v))}</code>"
        for k, v in u.annotations.items()
    )
    errors = "".join(
        f" <code style='background:#ffebe9;color:#cf222e'>⚠ {html.escape(e[:120])}</code>"
        for e in u.handler_errors
    )
    return f"<div class='stt-row'>{' · '.join(bits)}<br>{text}{notes}{errors}</div>"


def _plain_row(u: Utterance) -> str:
    when = f"[{u.start:6.2f}-{u.end:6.2f} s] " if u.start is not None and u.end is not None else ""
    notes = "".join(f"  ({k}: {v})" for k, v in u.annotations.items())
    errors = "".join(f"  (handler error: {e[:120]})" for e in u.handler_errors)
    who = f"{u.participant}: " if u.participant and u.participant != "local" else ""
    return f"{when}{who}{u.text}{notes}{errors}"


class TranscriptView(ReadableAfterwards, widgets.VBox):  # type: ignore[misc]  # ipywidgets ships no types
    """Live transcript: final utterances, newest at the bottom, then the words being spoken
    (one interim line per speaker). Each speaker has a name and a colour; the summary line
    counts utterances per speaker."""

    _live_class = "stt-transcript-view"
    _saved_class = "stt-transcript-saved"

    def __init__(
        self,
        feed: TranscriptFeed,
        *,
        max_rows: int = 200,
        height: int = 320,
        interim_hz: float = 10.0,
    ) -> None:
        self.feed = feed
        self.max_rows = max_rows
        self._height = height
        self._min_interim_gap = 1.0 / interim_hz
        self._last_interim_render = 0.0
        self._rows: list[str] = []
        self._interims: dict[str, Utterance] = {}  # per speaker: what they are saying now
        self._locked: dict[str, str] = {}  # per speaker: caption finals of the open turn
        self.render_thread_ids: set[int] = set()  # lets tests prove the loop-only rule
        self._list = widgets.HTML(layout=widgets.Layout(width="100%"))
        self._interim = widgets.HTML(layout=widgets.Layout(width="100%", min_height="1.6em"))
        self._summary = widgets.HTML()
        super().__init__([self._summary, self._list, self._interim])
        self.add_class(self._live_class)
        for u in list(feed.utterances)[-max_rows:]:
            self._rows.append(_row(u, feed))
        self._render_list()
        if feed.interim is not None:
            self._interims[feed.interim.participant] = feed.interim
        self._render_interim()
        self._unsubscribe = feed.subscribe(self._on_event)

    @property
    def text(self) -> str:
        """The finals shown, as plain text (handy in tests and exercises)."""
        return "\n".join(u.text for u in list(self.feed.utterances)[-self.max_rows :])

    def _on_event(self, event: FeedEvent) -> None:
        self.render_thread_ids.add(threading.get_ident())
        if isinstance(event, CaptionFinal):
            self._on_caption(event)
            return
        if not isinstance(event, Utterance):
            return
        if event.final:
            self._rows.append(_row(event, self.feed))
            del self._rows[: -self.max_rows]
            self._render_list()
            self._interims.pop(event.participant, None)
            self._locked.pop(event.participant, None)
            self._render_interim()
        else:
            self._interims[event.participant] = event
            now = time.monotonic()
            if now - self._last_interim_render >= self._min_interim_gap:
                self._last_interim_render = now
                self._render_interim()

    def _render_list(self) -> None:
        rows = "".join(reversed(self._rows))  # column-reverse: the first child is the newest
        style = _LIST_STYLE.format(height=self._height)
        empty = "<div style='color:#8c959f'>Waiting for speech…</div>" if not rows else ""
        self._list.value = f"<div class='stt-list' style='{style}'>{rows}{empty}</div>"
        counts = self.feed.counts
        speakers = self.feed.speakers
        per_speaker = ""
        if len(speakers) > 1 or (speakers and "local" not in speakers):
            per_speaker = (
                " ("
                + ", ".join(f"{speaker_label(self.feed, who)} {n}" for who, n in speakers.items())
                + ")"
            )
        self._summary.value = (
            f"<span style='color:#57606a;font-size:12px'>{counts['final']} utterances"
            f"{per_speaker} · showing the last {min(len(self._rows), self.max_rows)}</span>"
            + self._hide_saved_copy_rule()
        )
        self._changed()

    def _on_caption(self, event: CaptionFinal) -> None:
        """Final words of the open turn: locked (upright, dark) at once, before the interim."""
        who = event.participant
        self._locked[who] = f"{self._locked.get(who, '')} {event.text}".strip()
        self._interims.pop(who, None)  # those words are in the locked text now
        self._render_interim()

    def _render_interim(self) -> None:
        talking = list(dict.fromkeys([*self._locked, *self._interims]))
        several = len(talking) > 1 or any(p != "local" for p in talking)
        lines = []
        for who in talking:
            locked, interim = self._locked.get(who), self._interims.get(who)
            line = f"{speaker_label(self.feed, who)}: " if several else ""
            if locked:
                line += f"<span {_LOCKED}>{html.escape(locked)}</span> "
            if interim is not None:
                line += html.escape(interim.text)
            lines.append(line.rstrip())
        self._interim.value = (
            "<div class='stt-interim' style='color:#57606a;font-style:italic'>"
            + "<br>".join(lines)
            + "</div>"
        )

    def _state_widgets(self) -> list[widgets.Widget]:
        return [self._summary, self._list, self._interim]

    def _fallback(self) -> tuple[str, str]:
        shown = list(self.feed.utterances)[-self.max_rows :]
        count = self.feed.counts["final"]
        head = f"{count} utterance{'' if count == 1 else 's'}"
        if len(shown) < count:
            head += f", the last {len(shown)} shown"
        plain = "\n".join([f"TranscriptView: {head}", *(_plain_row(u) for u in shown)])
        rows = "".join(_row(u, self.feed) for u in shown) or "<div>Waiting for speech…</div>"
        return plain, f"<div style='color:#57606a;font-size:12px'>{html.escape(head)}</div>{rows}"

    def close(self) -> None:
        self._unsubscribe()
        self._unwatch()
        super().close()
