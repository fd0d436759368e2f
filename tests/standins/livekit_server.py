"""The kit's LiveKit server (`stt_agent.devserver`) with what tests need on top, for tests only.

The server itself is the kit's: signalling, media, data, agent workers, dispatch, the Twirp
APIs, JWT checks. This subclass adds only:

* failure injection: ``media=False`` answers every ``/rtc...`` request with a quick 501, for
  tests of a server that refuses rooms; ``auto_dispatch=False`` turns automatic dispatch off;
* a record of what happened (``auth_failure_log`` with times, ``rtc_requests``), and ways to
  wait for it (`wait_for_worker`, `wait_for_auth_failures`, `wait_for_job_status`);
* the historical test defaults: API key ``devkey`` and a 32-character secret, and
  ``async with LiveKitStandIn() as lk`` giving the server itself (not its settings).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from types import TracebackType
from typing import Any

from aiohttp import web
from livekit.protocol import agent, agent_dispatch, models

from stt_agent.devserver import DevServer
from stt_agent.devserver.agents import Worker
from stt_agent.devserver.participant import Participant

RTC_NOT_IMPLEMENTED = (
    "LiveKitStandIn was started with media=False: /rtc (room signalling and WebRTC media) is "
    "refused"
)
POLL_S = 0.02


@dataclass
class AuthFailure:
    at: float  # time.monotonic(), so tests can measure the client's retry rhythm
    path: str
    reason: str


class LiveKitStandIn(DevServer):
    """`DevServer` plus failure injection and waiting helpers. ``async with`` gives itself."""

    def __init__(
        self,
        *,
        api_key: str = "devkey",
        api_secret: str = "secret-of-at-least-32-characters-long",
        host: str = "127.0.0.1",
        port: int = 0,
        media: bool = True,
        auto_dispatch: bool = True,
        **options: Any,
    ) -> None:
        super().__init__(host, port, api_key=api_key, api_secret=api_secret, **options)
        self.api_secret = api_secret
        self.media = media
        self.agents.auto_dispatch = auto_dispatch
        self.auth_failure_log: list[AuthFailure] = []
        self.rtc_requests: list[str] = []  # paths of /rtc requests (query stripped)

    # the server's state under the names the tests use

    @property
    def ws_url(self) -> str:
        return self.url

    @property
    def auth_failures(self) -> int:
        return len(self.auth_failure_log)

    @property
    def workers(self) -> list[Worker]:
        return self.agents.workers

    @property
    def jobs(self) -> dict[str, agent.Job]:
        return self.agents.jobs

    @property
    def job_updates(self) -> list[tuple[str, str, str]]:
        return list(self.agents.job_updates)

    @property
    def dispatch_errors(self) -> list[str]:
        return list(self.agents.dispatch_errors)

    @property
    def dispatches(self) -> list[agent_dispatch.AgentDispatch]:
        return self.twirp.dispatches

    @property
    def rooms_info(self) -> dict[str, models.Room]:
        return {name: room.info for name, room in self.rooms.rooms.items()}

    @property
    def refused(self) -> list[str]:
        return list(self.signalling.refused)

    def peers(self, room: str) -> list[Participant]:
        found = self.rooms.get(room)
        return list(found.participants.values()) if found is not None else []

    async def dispatch_job(self, room_name: str, **options: Any) -> str:
        return await self.agents.dispatch_job(room_name, **options)

    async def terminate_job(self, job_id: str) -> None:
        await self.agents.terminate_job(job_id)

    # failure injection and records

    def _middlewares(self) -> list[Any]:
        @web.middleware
        async def record_rtc(
            request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
        ) -> web.StreamResponse:
            if request.path.lstrip("/").startswith("rtc"):
                self.rtc_requests.append(request.path)
                if not self.media:
                    return web.Response(status=501, text=RTC_NOT_IMPLEMENTED)
            return await handler(request)

        return [record_rtc]

    def _on_refused(self, path: str, reason: str) -> None:
        super()._on_refused(path, reason)
        self.auth_failure_log.append(AuthFailure(time.monotonic(), path, reason))

    async def __aenter__(self) -> LiveKitStandIn:  # type: ignore[override]
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    # waiting

    async def _wait(self, predicate: Callable[[], Any], timeout: float, what: str) -> Any:
        """Wait until predicate() is truthy and return its value."""
        try:
            async with asyncio.timeout(timeout):
                while not (value := predicate()):
                    await asyncio.sleep(POLL_S)
                return value
        except TimeoutError:
            raise TimeoutError(
                f"LiveKitStandIn: timed out after {timeout}s waiting for {what}"
            ) from None

    async def wait_for_worker(self, timeout: float = 10.0) -> str:
        """Wait for a connected, registered worker and return its id (the latest one)."""

        def connected_id() -> str | None:
            ids = [w.worker_id for w in self.workers if w.connected]
            return ids[-1] if ids else None

        return str(await self._wait(connected_id, timeout, "a worker to register"))

    async def wait_for_auth_failures(self, count: int, timeout: float = 10.0) -> None:
        await self._wait(lambda: self.auth_failures >= count, timeout, f"{count} auth failures")

    async def wait_for_job_status(
        self, job_id: str, status_names: set[str], timeout: float = 10.0
    ) -> tuple[str, str, str]:
        """Wait for an UpdateJobStatus of job_id whose status name (e.g. "JS_FAILED") is in
        status_names, including updates already received; returns (job_id, status, error)."""

        def match() -> tuple[str, str, str] | None:
            return next(
                (u for u in self.job_updates if u[0] == job_id and u[1] in status_names), None
            )

        found: tuple[str, str, str] = await self._wait(
            match, timeout, f"job {job_id} to reach {sorted(status_names)}"
        )
        return found
