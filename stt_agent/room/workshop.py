"""Workshop in a box: one cell opens a room, its join link and QR code, and the teacher's view.

    workshop = await stt_agent.open_workshop(host="auto")   # the laptop's Wi-Fi address
    workshop                                                 # link, QR code, who speaks
    await workshop.close()                                   # the link stops working

Attendees open the link (or scan the QR code) in their own browser, type a name, and the
caption page (`stt_agent/ui/captions.html`) joins the room with their microphone. The worker
in this kernel transcribes each of them under their name; their pages and the notebook show
everyone's captions. With no LIVEKIT_URL the kit's own LiveKit development server runs in the
kernel (the offline workshop); with one, that server is used and only the URL and keys change.
"""

from __future__ import annotations

import contextlib
import socket
from dataclasses import dataclass, field
from html import escape
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from ..check import worker_preflight
from ..config import Settings, load_settings
from ..devserver.network import is_loopback
from ..errors import ConfigError, RoomError
from ..handle import AgentHandle
from .join_service import ATTENDEE_TOKEN_TTL, JoinService
from .rooms import RoomSession, mint_user_token, open_room
from .speaker import VirtualSpeaker
from .worker import start_agent

if TYPE_CHECKING:
    import segno

__all__ = ["Workshop", "lan_address", "open_workshop"]

WORKSHOP_AGENT = "stt-agent-workshop"


def lan_address() -> str:
    """This machine's address on its network (the one a default route leaves by).

    A UDP socket "connected" to a documentation address sends nothing; it only makes the OS
    pick the outgoing interface. Falls back to 127.0.0.1 on a machine with no network.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect(("192.0.2.1", 9))
            return str(probe.getsockname()[0])
        except OSError:
            return "127.0.0.1"


@dataclass
class Workshop:
    """An open workshop: the room, its worker, its join link; made by `open_workshop`."""

    settings: Settings = field(repr=False)
    handle: AgentHandle
    session: RoomSession
    service: JoinService
    server: Any = field(default=None, repr=False)  # the kit's DevServer, when it runs here
    speakers: list[VirtualSpeaker] = field(default_factory=list, repr=False)

    @property
    def link(self) -> str:
        return self.service.link

    @property
    def room(self) -> str:
        return self.session.room

    @property
    def qr(self) -> segno.QRCode:
        """The join link as a QR code (shows itself in a notebook; `.save("qr.png")`)."""
        import segno

        return segno.make(self.link, error="m")

    @property
    def speaker_count(self) -> int:
        """How many people are being transcribed right now."""
        return len(self.handle.status.participants)

    def view(self) -> Any:
        """The teacher's view: link and QR code, who speaks, the worker, the whole transcript."""
        from ..ui.workshop_view import WorkshopView

        return WorkshopView(self)

    def page(self, name: str = "", *, height: int = 420) -> Any:
        """The caption page in the notebook, for your own microphone (the name pre-filled).

        Works in JupyterLab on this machine with a loopback link; on a LAN address the browser
        must first accept the workshop's certificate (open the link once in a tab).
        """
        from urllib.parse import urlencode

        from IPython.display import IFrame

        src = self.link + (f"?{urlencode({'name': name})}" if name else "")
        return IFrame(src, width="100%", height=height, extras=['allow="microphone"'])

    async def virtual_speaker(self, name: str, source: object) -> VirtualSpeaker:
        """A recording that joins the room under `name`, as an attendee would (not yet playing:
        `await speaker.play()`)."""
        token = mint_user_token(self.settings, self.room, identity=name, ttl=ATTENDEE_TOKEN_TTL)
        speaker = VirtualSpeaker(source, identity=name)
        await speaker.join(self.settings.livekit_url, token)
        self.speakers.append(speaker)
        return speaker

    async def close(self) -> None:
        """End the workshop: the link, the virtual speakers, the worker, the kit's server."""
        await self.service.close()
        for speaker in self.speakers:
            with contextlib.suppress(Exception):
                await speaker.aclose()
        await self.handle.stop()
        if self.server is not None:
            await self.server.stop()

    def _repr_html_(self) -> str:
        if self.service.certificate is not None:
            tls = (
                "<br>Attendees' browsers warn once about the certificate (made by this notebook"
                f"; SHA-256 <code>{escape(self.service.certificate.fingerprint[:23])}…</code>)."
            )
        else:
            tls = ""
        return (
            f"<div class='stt-workshop'><b>Join link</b> "
            f"<a href='{escape(self.link)}' target='_blank'>{escape(self.link)}</a>{tls}"
            f"<div>{self.qr.svg_inline(scale=4)}</div></div>"
        )


async def open_workshop(
    settings: Settings | None = None,
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    room: str | None = None,
    livekit_port: int = 0,
    secure: bool | None = None,
) -> Workshop:
    """Open a room for a workshop and its join link; start the worker that transcribes it.

    `host` is the address attendees reach (`"auto"`: this machine's network address). On a
    loopback address the link is plain http, for trying the page on this machine; any other
    address gets HTTPS with a certificate made now. Settings without LIVEKIT_URL start the
    kit's LiveKit development server on `host` (and `livekit_port`). `secure=True` serves
    HTTPS on loopback too (tests do, to walk the attendees' way on one machine).
    """
    settings = settings or load_settings()
    host = lan_address() if host == "auto" else host
    server = None
    if settings.has_livekit:
        # a server given in the settings that cannot take a worker: one line now, not a
        # worker retrying for minutes
        problem = await worker_preflight(settings)
        if problem:
            raise RoomError(f"cannot open the workshop: {problem}")
    else:
        from ..devserver import DevServer

        server = DevServer(host=host, port=livekit_port)
        await server.start()
        settings = server.settings(settings)
    if not is_loopback(host) and is_loopback(urlsplit(settings.livekit_url).hostname or ""):
        raise ConfigError(
            f"attendees cannot reach the LiveKit server at {settings.livekit_url} from other "
            f"machines: run it on {host} (or leave LIVEKIT_URL unset to use the kit's server)"
        )
    handle: AgentHandle | None = None
    try:
        handle = await start_agent(settings, agent_name=WORKSHOP_AGENT)
        await handle.wait_ready()
        session = await open_room(
            settings, room=room, agent_name=WORKSHOP_AGENT, identity="teacher"
        )
        service = JoinService(settings, session.room, host=host, port=port, secure=secure)
        await service.start()
    except BaseException:
        if handle is not None:
            await handle.stop()
        if server is not None:
            await server.stop()
        raise
    return Workshop(
        settings=settings, handle=handle, session=session, service=service, server=server
    )
