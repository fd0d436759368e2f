"""The teacher's view of a workshop: the join link and QR code, how many speak, the worker's
load, then the kit's `StatusView` and `TranscriptView` of the whole room."""

from __future__ import annotations

from html import escape
from typing import TYPE_CHECKING

import ipywidgets as widgets
import psutil

from ..room.worker_load import DEFAULT_MAX_STREAMS
from .status_view import StatusView
from .transcript_view import TranscriptView

if TYPE_CHECKING:
    from ..handle import AgentStatus
    from ..room.workshop import Workshop

__all__ = ["WorkshopView"]


class WorkshopView(widgets.VBox):  # type: ignore[misc]  # ipywidgets ships no types
    """Link, QR code and load at the top; the room's status and transcript below."""

    def __init__(self, workshop: Workshop) -> None:
        self.workshop = workshop
        settings = workshop.settings
        self.capacity = settings.max_streams or DEFAULT_MAX_STREAMS[settings.engine]
        self._header = widgets.HTML()
        self.status = StatusView(workshop.handle)
        self.transcript = TranscriptView(workshop.handle.feed)
        super().__init__([self._header, self.status, self.transcript])
        self.add_class("stt-workshop-view")
        psutil.cpu_percent()  # starts the measurement the first refresh reads
        self._unsubscribe = workshop.handle.on_status(self._refresh)
        self._refresh(workshop.handle.status)

    def _refresh(self, status: AgentStatus) -> None:
        speakers = len(status.participants)
        load = f"{speakers} of {self.capacity} real-time streams, CPU {psutil.cpu_percent():.0f} %"
        link = escape(self.workshop.link)
        self._header.value = (
            "<div class='stt-workshop' style='display:flex;gap:16px;align-items:center'>"
            f"<div>{self.workshop.qr.svg_inline(scale=4)}</div><div>"
            f"<div><b>Join link</b> <a href='{link}' target='_blank'>{link}</a></div>"
            f"<div>room <code>{escape(self.workshop.room)}</code></div>"
            f"<div class='stt-speaker-count'>speakers: {speakers}</div>"
            f"<div class='stt-worker-load'>worker load: {escape(load)}</div>"
            "</div></div>"
        )

    def close(self) -> None:
        self._unsubscribe()
        self.status.close()
        self.transcript.close()
        super().close()
