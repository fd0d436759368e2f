"""The agent's status as an ipywidgets view: state, worker, room, speakers, counts, errors.

It follows an `AgentHandle`, whose status and feed callbacks run on the kernel's event loop,
and re-renders at most a few times a second while utterances stream in. A saved notebook shows
the status badge as plain text and HTML (see `saved_copy`); the worker log is left out there.
"""

from __future__ import annotations

import html
import time
from typing import TYPE_CHECKING, Any

import ipywidgets as widgets

from ..feed import FeedEvent, Utterance
from .saved_copy import ReadableAfterwards
from .speakers import speaker_label

if TYPE_CHECKING:
    from ..handle import AgentHandle, AgentStatus

__all__ = ["StatusView"]

_STATE_COLOURS = {
    "starting": "#b08800",
    "registered": "#1a7f37",
    "in_job": "#0969da",
    "running": "#0969da",
    "finished": "#57606a",
    "stopped": "#57606a",
    "error": "#cf222e",
}


class StatusView(ReadableAfterwards, widgets.VBox):  # type: ignore[misc]  # ipywidgets ships no types
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
                f"{speaker_label(feed, who)} {n}" + ("" if who in live else " (left)")
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
        self._unwatch()
        super().close()
