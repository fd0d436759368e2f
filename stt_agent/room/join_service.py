"""The workshop's join link: the caption page, and a token for each attendee's name.

`JoinService` is a small aiohttp server in the teacher's kernel. Everything it serves lives
under one unguessable path, the join link (`https://ADDRESS:PORT/CODE/`):

* `CODE/` the caption page (`stt_agent/ui/captions.*`) and the vendored `livekit-client`;
* `CODE/join` (POST `{"name": ...}`): a token for that name, minted here with the API secret,
  which never leaves this process. The token is for this room only, join/publish/subscribe,
  and short-lived (15 minutes: LiveKit needs it only to connect). Names are unique in the room:
  a name already given out, or a participant already in the room, is refused, except to the
  browser tab that got it first (its `claim`), so a reload rejoins;
* `CODE/rtc...` LiveKit's signalling, passed through to the LiveKit server when that server is
  plain `ws://` (the kit's development server, a self-hosted one on a LAN): a page served over
  HTTPS may not open a `ws://` connection. A `wss://` server (LiveKit Cloud) is joined directly.

On a loopback address the service speaks plain HTTP (browsers treat `http://127.0.0.1` as a
secure context); on any other address it speaks HTTPS with a certificate made at start
(`certificate.py`). `close()` ends the link: later requests find nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import unicodedata
from dataclasses import dataclass, field
from datetime import timedelta
from importlib.resources import files
from typing import Any

import aiohttp
from aiohttp import web
from livekit import api

from ..config import Settings
from ..devserver.network import is_loopback
from ..errors import RoomError
from ..scrub import scrub
from .certificate import SelfSignedCertificate, make_certificate
from .guard import require_livekit
from .rooms import mint_user_token

__all__ = ["ATTENDEE_TOKEN_TTL", "JoinService"]

logger = logging.getLogger("stt_agent.workshop")

ATTENDEE_TOKEN_TTL = timedelta(minutes=15)
MAX_NAME_LENGTH = 40
# Bounds what strangers on the Wi-Fi can make this process keep.
MAX_ATTENDEES = 500
_REQUEST_LIMIT_BYTES = 4096
_API_TIMEOUT_S = 10.0
_UI = files("stt_agent.ui")
_PAGE_FILES = {
    "captions.js": "application/javascript",
    "captions.css": "text/css",
    "vendor/livekit-client.umd.js": "application/javascript",
}


class _Refused(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


@dataclass
class _Names:
    """Names given out in this room, each with the claim of the tab that got it."""

    claims: dict[str, tuple[str, str]] = field(default_factory=dict)  # key -> (name, claim)

    @staticmethod
    def clean(raw: object) -> str:
        if not isinstance(raw, str):
            raise _Refused(400, "send your name as text")
        name = " ".join(unicodedata.normalize("NFC", raw).split())
        if not name:
            raise _Refused(400, "type a name first")
        if len(name) > MAX_NAME_LENGTH:
            raise _Refused(400, f"a name has at most {MAX_NAME_LENGTH} characters")
        if any(unicodedata.category(c).startswith("C") for c in name):
            raise _Refused(400, "a name cannot hold control characters")
        return name

    def give(self, name: str, claim: str, present: set[str]) -> str:
        """The claim for `name`, or `_Refused` when someone else has it."""
        key = name.casefold()
        held = self.claims.get(key)
        if held is not None:
            if claim and secrets.compare_digest(held[1], claim):
                return claim
            raise _Refused(409, f"the name {name!r} is taken in this room: choose another")
        if key in {p.casefold() for p in present}:
            raise _Refused(409, f"the name {name!r} is taken in this room: choose another")
        if len(self.claims) >= MAX_ATTENDEES:
            raise _Refused(429, "this workshop is full")
        new_claim = secrets.token_urlsafe(16)
        self.claims[key] = (name, new_claim)
        return new_claim


class JoinService:
    """The join link of one room: the caption page and per-name tokens (see the module)."""

    def __init__(
        self,
        settings: Settings,
        room: str,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        reserved: tuple[str, ...] = (),
        secure: bool | None = None,
    ) -> None:
        require_livekit(settings)
        self.settings = settings
        self.room = room
        self.host = host
        self.port = port
        # HTTPS wherever the browser would not count the page as a secure context
        self.secure = not is_loopback(host) if secure is None else secure
        self.certificate: SelfSignedCertificate | None = None
        self._code = secrets.token_urlsafe(9)
        self._names = _Names()
        for name in reserved:  # e.g. the notebook's virtual speakers
            self._names.give(_Names.clean(name), secrets.token_urlsafe(16), set())
        self._runner: web.AppRunner | None = None
        self._client: aiohttp.ClientSession | None = None
        self._proxied = not settings.livekit_url.startswith(("wss://", "https://"))
        self._closed = False

    def __repr__(self) -> str:
        where = self.link if self._runner is not None else "not started"
        return f"JoinService(room={self.room!r}, {where})"

    @property
    def link(self) -> str:
        """The one join link (it holds the workshop's code; share it only with attendees)."""
        scheme = "https" if self.secure else "http"
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{scheme}://{host}:{self.port}/{self._code}/"

    @property
    def names(self) -> list[str]:
        """The names given out so far."""
        return [name for name, _ in self._names.claims.values()]

    async def start(self) -> str:
        """Listen, and return the link."""
        app = web.Application(client_max_size=_REQUEST_LIMIT_BYTES)
        base = f"/{self._code}"
        app.router.add_get(base, self._redirect)
        app.router.add_get(f"{base}/", self._page)
        for name in _PAGE_FILES:
            app.router.add_get(f"{base}/{name}", self._file)
        app.router.add_post(f"{base}/join", self._join)
        app.router.add_route("GET", base + "/rtc{tail:.*}", self._signal)
        # No access log: LiveKit's signalling carries the attendee's token in its query string.
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await self._runner.setup()
        if self.secure:
            self.certificate = make_certificate(self.host)
        site = web.TCPSite(
            self._runner,
            self.host,
            self.port,
            ssl_context=self.certificate.context if self.certificate else None,
        )
        try:
            await site.start()
        except OSError as e:
            await self._runner.cleanup()
            self._runner = None
            raise RoomError(
                f"the workshop's join link cannot listen on {self.host}:{self.port} "
                f"({e.strerror or e}): choose another address or port"
            ) from None
        if self.port == 0:
            server = site._server  # aiohttp keeps the bound socket here
            assert isinstance(server, asyncio.base_events.Server)
            self.port = server.sockets[0].getsockname()[1]
        self._client = aiohttp.ClientSession()
        logger.info(f"join link for room {self.room} is open on {self.host}:{self.port}")
        return self.link

    async def close(self) -> None:
        """End the link: the page, tokens and signalling all stop; safe to call twice."""
        self._closed = True
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()
            logger.info(f"join link for room {self.room} closed")
        client, self._client = self._client, None
        if client is not None:
            await client.close()

    # --- the page -----------------------------------------------------------------------

    async def _redirect(self, request: web.Request) -> web.StreamResponse:
        raise web.HTTPFound(f"/{self._code}/")

    async def _page(self, request: web.Request) -> web.StreamResponse:
        return self._serve("captions.html", "text/html")

    async def _file(self, request: web.Request) -> web.StreamResponse:
        name = request.path.removeprefix(f"/{self._code}/")
        return self._serve(name, _PAGE_FILES[name])

    def _serve(self, name: str, content_type: str) -> web.Response:
        body = _UI.joinpath(name).read_bytes()
        livekit = "" if self._proxied else " " + self.settings.livekit_url
        headers = {
            "Cache-Control": "no-store",
            "Referrer-Policy": "no-referrer",  # the link's code stays on this page
            "X-Content-Type-Options": "nosniff",
            "Content-Security-Policy": (
                f"default-src 'self'; connect-src 'self'{livekit}; "
                "media-src 'self' blob:; object-src 'none'; frame-ancestors *"
            ),
        }
        return web.Response(body=body, content_type=content_type, headers=headers)

    # --- tokens -------------------------------------------------------------------------

    async def _join(self, request: web.Request) -> web.StreamResponse:
        try:
            if self._closed:
                raise _Refused(410, "this workshop has ended")
            try:
                body = await request.json()
            except (ValueError, web.HTTPException):
                raise _Refused(400, 'send {"name": ...} as JSON') from None
            if not isinstance(body, dict):
                raise _Refused(400, 'send {"name": ...} as JSON')
            name = _Names.clean(body.get("name"))
            offered = body.get("claim")
            claim = self._names.give(
                name, offered if isinstance(offered, str) else "", await self._present()
            )
        except _Refused as e:
            return web.json_response({"error": str(e)}, status=e.status)
        token = mint_user_token(self.settings, self.room, identity=name, ttl=ATTENDEE_TOKEN_TTL)
        logger.info(f"{name} joins room {self.room} through the join link")
        url = self._page_livekit_url(request) if self._proxied else self.settings.livekit_url
        return web.json_response(
            {"url": url, "token": token, "identity": name, "room": self.room, "claim": claim},
            headers={"Cache-Control": "no-store"},
        )

    async def _present(self) -> set[str]:
        """Who is in the room now (a virtual speaker, the teacher), so no one takes their name."""
        lkapi = api.LiveKitAPI(
            self.settings.livekit_url,
            self.settings.livekit_api_key,
            self.settings.livekit_api_secret.reveal(),
            timeout=aiohttp.ClientTimeout(total=_API_TIMEOUT_S),
        )
        try:
            listed = await lkapi.room.list_participants(api.ListParticipantsRequest(room=self.room))
        except (api.TwirpError, aiohttp.ClientError, TimeoutError, OSError) as e:
            logger.warning(f"could not list room {self.room}'s participants: {scrub(str(e))}")
            raise _Refused(503, "the LiveKit server did not answer: try again") from None
        finally:
            await lkapi.aclose()
        return {p.identity for p in listed.participants}

    def _page_livekit_url(self, request: web.Request) -> str:
        """LiveKit's URL as the page must use it: this service's own origin and code."""
        return f"{'https' if self.secure else 'http'}://{request.host}/{self._code}"

    # --- signalling, passed through ---------------------------------------------------------

    async def _signal(self, request: web.Request) -> web.StreamResponse:
        if not self._proxied or self._client is None:
            raise web.HTTPNotFound()
        upstream = self.settings.livekit_url.rstrip("/") + "/rtc" + request.match_info["tail"]
        if request.query_string:
            upstream += "?" + request.query_string
        if request.headers.get("Upgrade", "").lower() == "websocket":
            return await self._relay_websocket(request, upstream)
        http_url = upstream.replace("ws://", "http://", 1)
        try:
            async with self._client.get(http_url) as answer:
                body = await answer.read()
                return web.Response(
                    status=answer.status, body=body, content_type=answer.content_type
                )
        except (aiohttp.ClientError, OSError):
            return web.Response(status=502, text="the LiveKit server did not answer")

    async def _relay_websocket(self, request: web.Request, upstream: str) -> web.StreamResponse:
        assert self._client is not None
        try:
            server_side = await self._client.ws_connect(upstream, autoping=True)
        except aiohttp.WSServerHandshakeError as e:
            return web.Response(status=e.status, text=scrub(e.message))
        except (aiohttp.ClientError, OSError):
            return web.Response(status=502, text="the LiveKit server did not answer")
        browser_side = web.WebSocketResponse(autoping=True)
        await browser_side.prepare(request)

        async def pump(source: Any, sink: Any) -> None:
            async for message in source:
                if message.type == aiohttp.WSMsgType.BINARY:
                    await sink.send_bytes(message.data)
                elif message.type == aiohttp.WSMsgType.TEXT:
                    await sink.send_str(message.data)
                else:
                    break

        pumps = [
            asyncio.create_task(pump(browser_side, server_side)),
            asyncio.create_task(pump(server_side, browser_side)),
        ]
        try:
            await asyncio.wait(pumps, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in pumps:
                task.cancel()
            with contextlib.suppress(Exception):
                await asyncio.gather(*pumps, return_exceptions=True)
            await server_side.close()
            await browser_side.close()
        return browser_side
