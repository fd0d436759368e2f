"""`DevServer`: the kit's LiveKit development server, on the caller's event loop.

    async with stt_agent.DevServer() as settings:      # 127.0.0.1, a free port, fresh keys
        handle = await stt_agent.start_agent(settings)
        session = await stt_agent.open_room(settings, agent_name=...)

or, across notebook cells, ``server = DevServer(); settings = await server.start()`` and later
``await server.stop()``. `settings()` gives the kit's `Settings` with LIVEKIT_URL, _API_KEY and
_API_SECRET pointing at this server.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import socket
from collections.abc import Coroutine
from dataclasses import replace
from types import TracebackType
from typing import Any

from aiohttp import web
from livekit.protocol import models

from ..config import Secret, Settings
from ..errors import ConfigError
from .agents import AgentService
from .auth import DEV_API_KEY, DEV_API_SECRET, Keys
from .http import SERVER_NAME, build_app, quiet_logger
from .network import is_loopback, media_interfaces
from .rooms import RoomManager
from .signalling import Signalling
from .twirp import TwirpService

__all__ = ["DEV_API_KEY", "DEV_API_SECRET", "DevServer", "new_key_pair"]

logger = logging.getLogger("stt_agent.devserver")

# the real server's defaults (pkg/rtc/room.go PingIntervalSeconds / PingTimeoutSeconds)
PING_INTERVAL_S, PING_TIMEOUT_S = 5, 15
_SIGNAL_PROTOCOL, _AGENT_PROTOCOL = 16, 1  # what LiveKit's server advertises in ServerInfo


def new_key_pair() -> tuple[str, str]:
    """A fresh API key and secret shaped like LiveKit's (``API`` + 12 characters; 43)."""
    return "API" + secrets.token_hex(6), secrets.token_urlsafe(32)


class DevServer:
    """A LiveKit-compatible server for one machine: rooms with audio, data and text streams,
    agent workers and dispatch, the Room and AgentDispatch APIs.

    `api_key`/`api_secret` default to a fresh pair; LiveKit's dev pair (`devkey`/`secret`) is
    refused on any address but loopback. `port=0` picks a free port.
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        api_key: str | None = None,
        api_secret: str | None = None,
        ping_interval_s: int = PING_INTERVAL_S,
        ping_timeout_s: int = PING_TIMEOUT_S,
    ) -> None:
        if (api_key is None) != (api_secret is None):
            raise ConfigError("DevServer: give both api_key and api_secret, or neither")
        if api_key is None or api_secret is None:
            api_key, api_secret = new_key_pair()
        if (api_key, api_secret) == (DEV_API_KEY, DEV_API_SECRET) and not is_loopback(host):
            raise ConfigError(
                f"the dev key pair (devkey/secret) is for 127.0.0.1 only, not {host}: anyone "
                "on the network knows it; leave out --dev to get a key pair of your own"
            )
        self.host, self.port = host, port
        self.api_key = api_key
        self.keys = Keys(api_key, api_secret)
        self.server_info = models.ServerInfo(
            edition=models.ServerInfo.Edition.Standard,
            version=SERVER_NAME,
            protocol=_SIGNAL_PROTOCOL,
            agent_protocol=_AGENT_PROTOCOL,
            node_id="ND_devserver",
            region="local",
        )
        self._tasks: set[asyncio.Task[None]] = set()
        self.rooms = RoomManager(on_created=self._on_room_created)
        self.agents = AgentService(
            self.keys, self.rooms, self.server_info, self._spawn, self._on_refused
        )
        self.signalling = Signalling(
            self.keys,
            self.rooms,
            self.server_info,
            self._spawn,
            ping_interval_s=ping_interval_s,
            ping_timeout_s=ping_timeout_s,
            on_refused=self._on_refused,
        )
        self.twirp = TwirpService(self.keys, self.rooms, self.agents, self._spawn, self._on_refused)
        self._runner: web.AppRunner | None = None
        self._stopping: asyncio.Task[None] | None = None

    # ------------------------------------------------------------------ addresses

    @property
    def running(self) -> bool:
        return self._runner is not None

    @property
    def url(self) -> str:
        """The ws:// URL clients on this machine use (LIVEKIT_URL)."""
        host = "127.0.0.1" if self.host in ("0.0.0.0", "", "::") else self.host
        host = f"[{host}]" if ":" in host else host
        return f"ws://{host}:{self.port}"

    @property
    def http_url(self) -> str:
        return "http" + self.url[2:]

    def settings(self, base: Settings | None = None, **changes: Any) -> Settings:
        """`base` (default: all defaults) pointed at this server, then `changes` applied."""
        if not self.running:
            raise ConfigError(
                "the kit's LiveKit server is not running: start it first "
                "(`async with DevServer() as settings:` or `await server.start()`)"
            )
        aimed = replace(
            base or Settings(),
            livekit_url=self.url,
            livekit_api_key=self.api_key,
            livekit_api_secret=Secret(self.keys.reveal_secret()),
        )
        return replace(aimed, **changes) if changes else aimed

    def __repr__(self) -> str:  # the secret never shows
        state = self.url if self.running else "not running"
        return f"DevServer({state}, {len(self.rooms.rooms)} room(s))"

    # ------------------------------------------------------------------ lifecycle

    def _middlewares(self) -> list[Any]:
        """Extra aiohttp middlewares (for tests that inject failures)."""
        return []

    async def start(self) -> Settings:
        """Listen, and return the settings that point at this server."""
        if self.running:
            return self.settings()
        self._stopping = None
        routes = [
            web.get("/agent", self.agents.handle),
            *self.signalling.routes(),
            *self.twirp.routes(),
        ]
        app = build_app(routes, self._middlewares())
        runner = web.AppRunner(app, access_log=None, logger=quiet_logger(), shutdown_timeout=1.0)
        await runner.setup()
        # bind the socket ourselves: port 0 gives a free port with no race between servers
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((self.host, self.port))
            await web.SockSite(runner, sock).start()
        except OSError as e:
            sock.close()
            await runner.cleanup()
            raise ConfigError(
                f"the kit's LiveKit server cannot listen on {self.host}:{self.port} "
                f"({e.strerror or e}): choose another port, or stop what is using it"
            ) from None
        self.port = sock.getsockname()[1]
        self._runner = runner
        self.rooms.start()
        if not media_interfaces():
            logger.warning(
                "only the loopback interface is up: LiveKit's clients cannot join rooms with "
                "media until another network interface is up (Wi-Fi, Ethernet or any other; no "
                "internet needed); local mode still works"
            )
        return self.settings()

    async def stop(self) -> None:
        """Close every room and worker connection, then stop listening. Safe to call twice."""
        if self._stopping is None:
            self._stopping = asyncio.ensure_future(self._stop())
        await asyncio.shield(self._stopping)

    async def _stop(self) -> None:
        await self.rooms.aclose()
        await self.agents.aclose()
        for task in list(self._tasks):
            task.cancel()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    aclose = stop

    async def __aenter__(self) -> Settings:
        return await self.start()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    # ------------------------------------------------------------------ internals

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._done)
        return task

    def _done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and (e := task.exception()) is not None:
            logger.warning("background task failed (%s: %s)", type(e).__name__, e)

    def _on_room_created(self, name: str) -> None:
        # workers registered without an agent name get a job for every new room
        self.agents.dispatch_soon(name, "", wait=False)

    def _on_refused(self, path: str, reason: str) -> None:
        logger.info("refused %s: %s", path, reason)
