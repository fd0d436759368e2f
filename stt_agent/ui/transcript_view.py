"""ipywidgets views of the live transcript and of the agent's status.

Views subscribe to a `TranscriptFeed` or an `AgentHandle`, whose callbacks always run on the
kernel's event loop, so widgets are only ever touched from there. The DOM stays bounded: the
transcript shows the last `max_rows` utterances (the feed keeps more), and interim text is
rendered at most `interim_hz` times a second, which keeps an hour of speech responsive.

Saved notebooks read right too: each view's output also carries a plain-text and an HTML
rendering of what it shows (for GitHub, nbconvert, a course site, a notebook opened without
its kernel), and both are brought up to date, with the widget state, after every cell.
"""

from __future__ import annotations

import html
import sys
import threading
import time
import uuid
import weakref
from datetime import datetime
from typing import TYPE_CHECKING, Any

import ipywidgets as widgets
from IPython import get_ipython
from IPython.display import display, update_display

from ..feed import FeedEvent, TranscriptFeed, Utterance

if TYPE_CHECKING:
    from ..runtime import AgentHandle, AgentStatus

__all__ = ["StatusView", "TranscriptView"]

# column-reverse keeps the scroll position pinned to the newest row with no JavaScript.
_LIST_STYLE = (
    "display:flex;flex-direction:column-reverse;overflow-y:auto;max-height:{height}px;"
    "font-family:var(--jp-content-font-family,sans-serif);font-size:13px;line-height:1.45"
)
_STATE_COLOURS = {
    "starting": "#b08800",
    "registered": "#1a7f37",
    "in_job": "#0969da",
    "running": "#0969da",
    "finished": "#57606a",
    "stopped": "#57606a",
    "error": "#cf222e",
}
# One colour per speaker, readable on light and dark themes; given out in order of appearance.
_SPEAKER_COLOURS = (
    "#0969da",
    "#8250df",
    "#bf3989",
    "#1a7f37",
    "#bc4c00",
    "#0a7b83",
    "#9a6700",
    "#cf222e",
)
_colours: weakref.WeakKeyDictionary[TranscriptFeed, dict[str, str]] = weakref.WeakKeyDictionary()


def speaker_colour(feed: TranscriptFeed, participant: str) -> str:
    """The colour of `participant` in every view of `feed` (the same in all of them)."""
    given = _colours.setdefault(feed, {})
    if participant not in given:
        given[participant] = _SPEAKER_COLOURS[len(given) % len(_SPEAKER_COLOURS)]
    return given[participant]


def _speaker(feed: TranscriptFeed, participant: str) -> str:
    colour = speaker_colour(feed, participant)
    return (
        f"<b class='stt-speaker' data-participant='{html.escape(participant, quote=True)}' "
        f"style='color:{colour}'>{html.escape(participant)}</b>"
    )


def _row(u: Utterance, feed: TranscriptFeed) -> str:
    when = datetime.fromtimestamp(u.received_at).strftime("%H:%M:%S")
    bits = [f"<span style='color:#57606a'>{when}</span>"]
    if u.participant:
        bits.append(_speaker(feed, u.participant))
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


class _ReadableAfterwards:
    """A widget whose saved notebook shows its content where widgets cannot render.

    Displaying the view shows the live widget and, right after it, a *saved copy*: a plain
    text/html + text/plain output of what the view shows. Where the widget renders (JupyterLab
    with its kernel) a rule in the widget's own HTML hides that copy; where it cannot (GitHub,
    nbconvert, a course site, a notebook reopened without its kernel) the copy is what reads.

    The copy has a display id and is brought up to date, with the widget state, after every
    cell (IPython's `post_run_cell` event, which runs inside that cell): a headless run
    (nbclient, nbconvert) records only messages from the cell that is running, so updates made
    by the agent in the background would otherwise be lost and the saved notebook would say
    "0 utterances". Only the hidden copy is re-rendered, never the live widget. In Colab, whose
    outputs are separate frames that the rule cannot reach, the copy is left out.
    """

    _saved_class = ""  # the saved copy's CSS class
    _live_class = ""  # the live widget's CSS class
    _display_id: str | None = None
    _stale = False

    def _fallback(self) -> tuple[str, str]:
        """(text/plain, inner text/html) of what the view shows now."""
        raise NotImplementedError

    def _state_widgets(self) -> list[widgets.Widget]:
        """The widgets whose state changes while the view lives."""
        raise NotImplementedError

    def _hide_saved_copy_rule(self) -> str:
        """A style for the live widget's HTML: hides the saved copy next to a rendered view."""
        return (
            f"<style>.jp-OutputArea:has(.{self._live_class}) "
            f".jp-OutputArea-child:has(.{self._saved_class}) {{display:none}}</style>"
        )

    def _saved_copy(self) -> dict[str, str]:
        plain, inner = self._fallback()
        return {"text/plain": plain, "text/html": f"<div class='{self._saved_class}'>{inner}</div>"}

    def _ipython_display_(self) -> None:
        live = widgets.Widget._repr_mimebundle_(self)  # type: ignore[arg-type]
        live["text/plain"] = f"{type(self).__name__} (a live widget; a saved copy follows)"
        display(live, raw=True)
        if "google.colab" in sys.modules:
            return
        if self._display_id is None:
            self._display_id = f"stt-agent-{uuid.uuid4().hex}"
        display(self._saved_copy(), raw=True, display_id=self._display_id)
        self._stale = False
        _watch(self)

    def _changed(self) -> None:
        self._stale = True

    def _bring_saved_output_up_to_date(self) -> None:
        if not self._stale or self._display_id is None:
            return
        self._stale = False
        for widget in self._state_widgets():
            if widget.comm is not None:
                widget.send_state()  # an unchanged value re-renders nothing in the browser
        update_display(self._saved_copy(), raw=True, display_id=self._display_id)


_shown: weakref.WeakSet[_ReadableAfterwards] = weakref.WeakSet()
_hooked_shells: weakref.WeakSet[Any] = weakref.WeakSet()


def _watch(view: _ReadableAfterwards) -> None:
    _shown.add(view)
    shell = get_ipython()
    if shell is not None and shell not in _hooked_shells:
        shell.events.register("post_run_cell", _after_cell)
        _hooked_shells.add(shell)


def _after_cell(*_: object) -> None:
    for view in list(_shown):
        try:
            view._bring_saved_output_up_to_date()
        except Exception:  # a closed comm, a kernel shutting down: never break the user's cell
            _shown.discard(view)


def _plain_row(u: Utterance) -> str:
    when = f"[{u.start:6.2f}-{u.end:6.2f} s] " if u.start is not None and u.end is not None else ""
    notes = "".join(f"  ({k}: {v})" for k, v in u.annotations.items())
    errors = "".join(f"  (handler error: {e[:120]})" for e in u.handler_errors)
    who = f"{u.participant}: " if u.participant and u.participant != "local" else ""
    return f"{when}{who}{u.text}{notes}{errors}"


class TranscriptView(_ReadableAfterwards, widgets.VBox):
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
        if not isinstance(event, Utterance):
            return
        if event.final:
            self._rows.append(_row(event, self.feed))
            del self._rows[: -self.max_rows]
            self._render_list()
            self._interims.pop(event.participant, None)
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
                + ", ".join(f"{_speaker(self.feed, who)} {n}" for who, n in speakers.items())
                + ")"
            )
        self._summary.value = (
            f"<span style='color:#57606a;font-size:12px'>{counts['final']} utterances"
            f"{per_speaker} · showing the last {min(len(self._rows), self.max_rows)}</span>"
            + self._hide_saved_copy_rule()
        )
        self._changed()

    def _render_interim(self) -> None:
        several = len(self._interims) > 1 or any(p != "local" for p in self._interims)
        lines = [
            (f"{_speaker(self.feed, who)}: " if several else "") + html.escape(u.text)
            for who, u in self._interims.items()
        ]
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
        _shown.discard(self)
        super().close()


class StatusView(_ReadableAfterwards, widgets.VBox):
    """Agent status at a glance: state, worker id, room, participants, counts, last error,
    and the worker's log in a collapsible panel."""

    _live_class = "stt-status-view"
    _saved_class = "stt-status-saved"

    def __init__(self, handle: AgentHandle, *, log_lines: int = 50) -> None:
        self.handle = handle
        self._log_lines = log_lines
        self._badge = widgets.HTML()
        self._log = widgets.HTML()
        self._log_box = widgets.Accordion(children=[self._log], titles=("Worker log",))
        self._log_box.selected_index = None
        super().__init__([self._badge, self._log_box])
        self.add_class(self._live_class)
        self._unsubscribe_status = handle.on_status(lambda _: self.refresh())
        self._unsubscribe_feed = handle.feed.subscribe(self._on_feed)
        self._last_refresh = 0.0
        self.refresh()

    def _on_feed(self, event: FeedEvent) -> None:
        # Counts change with every utterance; re-render at most a few times a second.
        if time.monotonic() - self._last_refresh > 0.25 or (
            isinstance(event, Utterance) and event.final
        ):
            self.refresh()

    def refresh(self) -> None:
        self._last_refresh = time.monotonic()
        status: AgentStatus = self.handle.status
        colour = _STATE_COLOURS.get(status.state, "#57606a")
        rows: list[tuple[str, Any]] = [("mode", self.handle.mode)]
        if status.worker_id:
            rows.append(("worker", status.worker_id))
        if status.room:
            rows.append(("room", status.room))
        feed = self.handle.feed
        speakers = dict(feed.speakers)
        for who in status.participants:  # transcribed now, maybe silent so far
            speakers.setdefault(who, 0)
        counts = feed.counts
        rows.append(("utterances", f"{counts['final']} final, {counts['interim']} interim"))
        names = self.handle.turn_handlers
        rows.append(("turn handlers", ", ".join(names) if names else "none"))
        handler_errors = self.handle.handlers.error_count
        if handler_errors:
            rows.append(("handler errors", handler_errors))
        if status.detail and not status.error:
            rows.append(("", status.detail))
        table = "".join(
            f"<tr><td style='color:#57606a;padding-right:12px'>{html.escape(str(k))}</td>"
            f"<td>{html.escape(str(v))}</td></tr>"
            for k, v in rows
        )
        if self.handle.mode == "room" and speakers:
            # who is transcribed (now, or earlier in this feed) and how much each one said
            live = set(status.participants)
            cells = ", ".join(
                f"{_speaker(feed, who)} {n}" + ("" if who in live else " (left)")
                for who, n in speakers.items()
            )
            table += (
                "<tr><td style='color:#57606a;padding-right:12px'>speakers</td>"
                f"<td class='stt-speakers'>{cells}</td></tr>"
            )
        error = (
            f"<div style='color:#cf222e;margin-top:4px'>⚠ {html.escape(status.error)}</div>"
            if status.error
            else ""
        )
        self._badge_html = (
            f"<div class='stt-status' data-state='{status.state}'>"
            f"<span style='background:{colour};color:white;border-radius:10px;padding:1px 9px'>"
            f"{status.state}</span><table style='margin-top:4px'>{table}</table>{error}</div>"
        )
        self._badge.value = self._badge_html + self._hide_saved_copy_rule()
        self._plain = "\n".join(
            [f"StatusView: {status.state}"]
            + [f"  {k}: {v}" if k else f"  {v}" for k, v in rows]
            + ([f"  error: {status.error}"] if status.error else [])
        )
        lines = list(self.handle.logs)[-self._log_lines :]
        self._log.value = (
            "<pre style='font-size:11px;max-height:200px;overflow:auto'>"
            + html.escape("\n".join(lines) or "(no worker log yet)")
            + "</pre>"
        )
        self._changed()

    def _state_widgets(self) -> list[widgets.Widget]:
        return [self._badge, self._log]

    def _fallback(self) -> tuple[str, str]:
        # The badge only: the worker log is for live debugging, not for a saved page.
        return self._plain, self._badge_html

    def close(self) -> None:
        self._unsubscribe_status()
        self._unsubscribe_feed()
        _shown.discard(self)
        super().close()
