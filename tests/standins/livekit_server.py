"""A stand-in for the parts of a LiveKit server that an agent worker talks to, for tests only.

What is implemented, following the real server (livekit/livekit ``pkg/service``) and the real
clients installed here (livekit-agents 1.8.9 ``worker.py``, livekit-api 1.2.2):

* ``GET /agent`` (websocket): the worker protocol. Auth is the JWT in ``Authorization: Bearer``
  (or ``?access_token=``), HS256-signed with the API secret, ``iss`` = API key, and it must carry
  the ``video.agent`` grant. Any failure is an HTTP 401 on the upgrade, as on the real server.
  Messages are binary protobufs: ``livekit.WorkerMessage`` in, ``livekit.ServerMessage`` out.
* Job dispatch, driven by the test through :meth:`LiveKitStandIn.dispatch_job`: AvailabilityRequest
  -> AvailabilityResponse -> JobAssignment (with a room-join token signed with the API secret).
* ``POST /twirp/livekit.RoomService/{CreateRoom,ListRooms,DeleteRoom,ListParticipants}`` with the
  same grants the real server requires, protobuf or JSON bodies, and Twirp JSON errors.
* ``POST /twirp/livekit.AgentDispatchService/CreateDispatch`` (roomAdmin grant for that room, as
  the real server checks it): the dispatch is recorded in :attr:`LiveKitStandIn.dispatches` (a
  missing room is created: a simplification). It is not forwarded to a worker automatically; a
  test that wants the worker to get the job calls :meth:`LiveKitStandIn.dispatch_job` itself.

* ``/rtc`` room signalling and WebRTC media (aiortc): see ``livekit_sfu.py``. The real
  ``livekit.rtc`` client joins a room, publishes audio, receives the others' audio and data
  packets (text streams such as ``lk.transcription`` included). With ``media=False`` every
  ``/rtc...`` request gets a quick 501 instead, for tests of a server that refuses rooms.
* Dispatch like the real server: ``CreateDispatch`` offers the job to a worker registered with
  that agent name, and a worker registered without a name gets a job for every room created
  through ``CreateRoom`` or a first join (``auto_dispatch=False`` turns both off; tests can
  always call :meth:`LiveKitStandIn.dispatch_job` themselves).

Run it on its own with ``python -m tests.standins.livekit_server --port PORT``: 127.0.0.1, the
dev key pair ``devkey`` / ``secret``, one line containing ``ready`` once it listens.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
import socket
import sys
import time
import uuid
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

import jwt
from aiohttp import WSMsgType, web
from google.protobuf import json_format
from google.protobuf.message import DecodeError, Message
from jwt.warnings import InsecureKeyLengthWarning
from livekit import api
from livekit.protocol import agent, agent_dispatch, models, room

from .livekit_sfu import Sfu

STANDIN_VERSION = "standin-1.0"
# protocol numbers the real server advertises in ServerInfo (signal protocol / agent protocol)
_SIGNAL_PROTOCOL = 16
_AGENT_PROTOCOL = 1

RTC_NOT_IMPLEMENTED = (
    "LiveKitStandIn was started with media=False: /rtc (room signalling and WebRTC media) is "
    "refused"
)


def _new_id(prefix: str) -> str:
    # same shape as the real server's ids (prefix + 12 chars), e.g. AW_1a2b3c4d5e6f
    return prefix + uuid.uuid4().hex[:12]


class _AuthError(Exception):
    """Raised when a request cannot be authenticated; the message is sent back to the client."""


@dataclass
class AuthFailure:
    at: float  # time.monotonic(), so tests can measure the client's retry rhythm
    path: str
    reason: str


@dataclass
class RegisteredWorker:
    """One worker websocket that completed registration."""

    worker_id: str
    request: agent.RegisterWorkerRequest  # everything the worker sent in `register`
    connected: bool = True
    status_updates: list[agent.UpdateWorkerStatus] = field(default_factory=list)
    migrated_jobs: list[str] = field(default_factory=list)
    _ws: web.WebSocketResponse | None = field(default=None, repr=False)
    # aiohttp does not serialise concurrent writes of one websocket, so sends go through this lock
    _send_lock: asyncio.Lock = field(default_factory=asyncio.Lock, repr=False)

    @property
    def type(self) -> str:
        return agent.JobType.Name(self.request.type)

    @property
    def agent_name(self) -> str:
        return self.request.agent_name

    @property
    def version(self) -> str:
        return self.request.version

    @property
    def namespace(self) -> str:
        return self.request.namespace

    @property
    def permissions(self) -> models.ParticipantPermission:
        return self.request.allowed_permissions

    async def send(self, msg: agent.ServerMessage) -> None:
        assert self._ws is not None
        async with self._send_lock:
            await self._ws.send_bytes(msg.SerializeToString())


class LiveKitStandIn:
    """In-process fake LiveKit server: worker protocol, Room service, rooms with media.

    Use as ``async with LiveKitStandIn() as lk:`` and point the worker at ``lk.ws_url``.
    """

    def __init__(
        self,
        *,
        api_key: str = "devkey",
        api_secret: str = "secret-of-at-least-32-characters-long",
        host: str = "127.0.0.1",
        port: int = 0,
        media: bool = True,
        auto_dispatch: bool = True,
    ) -> None:
        self.api_key = api_key
        self.api_secret = api_secret
        self.host = host
        self.port = port
        self.media = media
        self.auto_dispatch = auto_dispatch
        self.sfu = Sfu(self)
        self.dispatch_errors: list[str] = []  # automatic dispatches that found no taker
        self._background: set[asyncio.Task[Any]] = set()

        # introspection for tests
        self.workers: list[RegisteredWorker] = []
        self.auth_failure_log: list[AuthFailure] = []
        self.job_updates: list[tuple[str, str, str]] = []  # (job_id, JobStatus name, error)
        self.jobs: dict[str, agent.Job] = {}
        self.rooms: dict[str, models.Room] = {}
        self.rtc_requests: list[str] = []  # paths of refused /rtc attempts (query stripped)
        self.dispatches: list[agent_dispatch.AgentDispatch] = []  # from CreateDispatch

        self._pending_availability: dict[str, asyncio.Future[agent.AvailabilityResponse]] = {}
        self._changed: asyncio.Condition | None = None
        self._runner: web.AppRunner | None = None
        self._server_info = models.ServerInfo(
            edition=models.ServerInfo.Edition.Standard,
            version=STANDIN_VERSION,
            protocol=_SIGNAL_PROTOCOL,
            agent_protocol=_AGENT_PROTOCOL,
            node_id="ND_standin",
            region="standin",
        )

    # ----------------------------------------------------------------- lifecycle

    @property
    def ws_url(self) -> str:
        return f"ws://{self.host}:{self.port}"

    @property
    def http_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def auth_failures(self) -> int:
        return len(self.auth_failure_log)

    async def __aenter__(self) -> LiveKitStandIn:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def start(self) -> None:
        self._changed = asyncio.Condition()
        app = web.Application()
        app.router.add_get("/agent", self._handle_agent)
        app.router.add_post("/twirp/livekit.RoomService/{method}", self._handle_room_service)
        app.router.add_post(
            "/twirp/livekit.AgentDispatchService/{method}", self._handle_dispatch_service
        )
        if self.media:
            app.router.add_get("/rtc", self.sfu.handle_rtc)
            app.router.add_get("/rtc/validate", self.sfu.handle_validate)
            app.router.add_get("/rtc/v1/validate", self.sfu.handle_validate)
            app.router.add_get("/rtc/v1", self.sfu.handle_v1)
        else:
            app.router.add_route("*", "/rtc{tail:.*}", self._handle_rtc)
        # no access log: /rtc and /agent requests carry tokens in the URL or headers
        self._runner = web.AppRunner(app, shutdown_timeout=1.0, access_log=None)
        await self._runner.setup()
        # bind the socket ourselves: port 0 gives a free port without racing other tests
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((self.host, self.port))
        self.port = sock.getsockname()[1]
        await web.SockSite(self._runner, sock).start()

    async def aclose(self) -> None:
        for task in list(self._background):
            task.cancel()
        await self.sfu.aclose()
        for w in self.workers:
            if w._ws is not None and not w._ws.closed:
                await w._ws.close(code=1001, message=b"stand-in shutting down")
        for fut in self._pending_availability.values():
            fut.cancel()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    # ----------------------------------------------------------------- waiting helpers

    async def _notify(self) -> None:
        assert self._changed is not None
        async with self._changed:
            self._changed.notify_all()

    async def _wait(self, predicate: Callable[[], Any], timeout: float, what: str) -> Any:
        """Wait until predicate() is truthy and return its value."""
        assert self._changed is not None
        try:
            async with asyncio.timeout(timeout), self._changed:
                return await self._changed.wait_for(predicate)
        except TimeoutError:
            raise TimeoutError(
                f"LiveKitStandIn: timed out after {timeout}s waiting for {what}"
            ) from None

    async def wait_for_worker(self, timeout: float = 10.0) -> str:
        """Wait for a connected, registered worker and return its id (the latest one)."""

        def connected_id() -> str | None:
            ids = [w.worker_id for w in self.workers if w.connected]
            return ids[-1] if ids else None

        return await self._wait(connected_id, timeout, "a worker to register")

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

        return await self._wait(match, timeout, f"job {job_id} to reach {sorted(status_names)}")

    # ----------------------------------------------------------------- auth

    def _claims(self, request: web.Request) -> api.Claims | None:
        """Verify the request's token like the real server's APIKeyAuthMiddleware.

        No token at all yields None (the handler then refuses for lack of grants); a present but
        invalid token raises _AuthError.
        """
        header = request.headers.get("Authorization", "")
        if header:
            if not header.startswith("Bearer "):
                raise _AuthError("invalid authorization header. Must start with Bearer ")
            token = header[len("Bearer ") :]
        else:
            token = request.query.get("access_token", "")
        if not token:
            return None
        try:
            issuer = jwt.decode(token, options={"verify_signature": False}).get("iss", "")
        except jwt.PyJWTError:
            raise _AuthError("invalid authorization token") from None
        if issuer != self.api_key:
            raise _AuthError(f"invalid API key: {issuer}")
        try:
            return api.TokenVerifier(self.api_key, self.api_secret).verify(token)
        except jwt.PyJWTError as e:
            raise _AuthError(f"invalid token: {e}") from None

    async def _record_auth_failure(self, request: web.Request, reason: str) -> None:
        self.auth_failure_log.append(AuthFailure(time.monotonic(), request.path, reason))
        await self._notify()

    # ----------------------------------------------------------------- /agent (worker protocol)

    async def _handle_agent(self, request: web.Request) -> web.StreamResponse:
        ws = web.WebSocketResponse()  # autoping answers the worker's 30 s websocket heartbeat
        if not ws.can_prepare(request).ok:
            return web.Response(status=404)  # the real server 404s non-websocket requests
        try:
            claims = self._claims(request)
            if claims is None or not claims.video.agent:
                raise _AuthError("permissions denied")
        except _AuthError as e:
            await self._record_auth_failure(request, str(e))
            return web.Response(status=401, text=str(e))

        await ws.prepare(request)
        worker: RegisteredWorker | None = None
        try:
            async for frame in ws:
                if frame.type != WSMsgType.BINARY:
                    continue  # the protocol is binary protobuf only
                msg = agent.WorkerMessage.FromString(frame.data)
                which = msg.WhichOneof("message")
                if which == "register":
                    worker = RegisteredWorker(_new_id("AW_"), msg.register, _ws=ws)
                    self.workers.append(worker)
                    reply = agent.RegisterWorkerResponse(
                        worker_id=worker.worker_id, server_info=self._server_info
                    )
                    await worker.send(agent.ServerMessage(register=reply))
                elif worker is None:
                    # the real server requires `register` first; anything else is a protocol bug
                    await ws.close(code=1008, message=b"register first")
                    break
                else:
                    await self._on_worker_message(worker, msg)
                await self._notify()
        finally:
            if worker is not None:
                worker.connected = False
                await self._notify()
        return ws

    async def _on_worker_message(self, worker: RegisteredWorker, msg: agent.WorkerMessage) -> None:
        which = msg.WhichOneof("message")
        if which == "availability":
            fut = self._pending_availability.get(msg.availability.job_id)
            if fut is not None and not fut.done():
                fut.set_result(msg.availability)
        elif which == "update_worker":
            worker.status_updates.append(msg.update_worker)
        elif which == "update_job":
            u = msg.update_job
            self.job_updates.append((u.job_id, agent.JobStatus.Name(u.status), u.error))
            if (job := self.jobs.get(u.job_id)) is not None:
                job.state.status = u.status
                job.state.error = u.error
                job.state.updated_at = time.time_ns()
        elif which == "ping":
            pong = agent.WorkerPong(last_timestamp=msg.ping.timestamp, timestamp=_now_ms())
            await worker.send(agent.ServerMessage(pong=pong))
        elif which == "migrate_job":
            worker.migrated_jobs.extend(msg.migrate_job.job_ids)
        # simulate_job is a LiveKit Cloud feature; ignored like an old server would

    async def dispatch_job(
        self,
        room_name: str,
        *,
        participant_identity: str | None = None,
        agent_name: str = "",
        metadata: str = "",
        timeout: float = 10.0,
    ) -> str:
        """Offer a JT_ROOM job for room_name to the matching registered workers (same agent_name),
        one after the other, like the server's dispatcher; assign it to the first that answers
        available=True and return the job id. participant_identity fills Job.participant.

        Raises LookupError if no worker matches, RuntimeError if every worker declined, and
        TimeoutError if a worker does not answer within timeout.
        """
        candidates = [
            w
            for w in self.workers
            if w.connected and w.agent_name == agent_name and w.request.type == agent.JT_ROOM
        ]
        if not candidates:
            raise LookupError(f"no registered JT_ROOM worker with agent_name={agent_name!r}")

        job = agent.Job(
            id=_new_id("AJ_"),
            dispatch_id=_new_id("AD_"),
            type=agent.JT_ROOM,
            room=self._get_or_create_room(room_name),
            agent_name=agent_name,
            metadata=metadata,
            state=agent.JobState(status=agent.JS_PENDING, updated_at=time.time_ns()),
        )
        if participant_identity is not None:
            job.participant.CopyFrom(
                models.ParticipantInfo(sid=_new_id("PA_"), identity=participant_identity)
            )

        for worker in candidates:
            fut = asyncio.get_running_loop().create_future()
            self._pending_availability[job.id] = fut
            try:
                await worker.send(
                    agent.ServerMessage(availability=agent.AvailabilityRequest(job=job))
                )
                async with asyncio.timeout(timeout):
                    answer = await fut
            finally:
                self._pending_availability.pop(job.id, None)
            if not answer.available:
                continue

            job.state.worker_id = worker.worker_id
            job.state.participant_identity = answer.participant_identity or f"agent-{job.id}"
            job.state.started_at = time.time_ns()
            self.jobs[job.id] = job
            assignment = agent.JobAssignment(
                job=job, url=self.ws_url, token=self._agent_token(job, worker, answer)
            )
            await worker.send(agent.ServerMessage(assignment=assignment))
            return job.id

        raise RuntimeError(f"every worker declined job {job.id} for room {room_name!r}")

    async def terminate_job(self, job_id: str) -> None:
        """Ask the worker running job_id to end it (ServerMessage.termination)."""
        job = self.jobs[job_id]
        worker = next(w for w in self.workers if w.worker_id == job.state.worker_id)
        await worker.send(agent.ServerMessage(termination=agent.JobTermination(job_id=job_id)))

    def _agent_token(
        self, job: agent.Job, worker: RegisteredWorker, answer: agent.AvailabilityResponse
    ) -> str:
        """Room-join token for the agent participant, built from the worker's answer and its
        registered permissions, as the real server does for an assignment."""
        perms = worker.permissions
        token = (
            api.AccessToken(self.api_key, self.api_secret)
            .with_identity(job.state.participant_identity)
            .with_name(answer.participant_name)
            .with_metadata(answer.participant_metadata)
            .with_attributes(dict(answer.participant_attributes))
            .with_kind("agent")
            .with_grants(
                api.VideoGrants(
                    room_join=True,
                    room=job.room.name,
                    agent=True,
                    can_publish=perms.can_publish,
                    can_subscribe=perms.can_subscribe,
                    can_publish_data=perms.can_publish_data,
                    can_update_own_metadata=perms.can_update_metadata,
                    hidden=perms.hidden,
                )
            )
        )
        return token.to_jwt()

    # ----------------------------------------------------------------- Room service (Twirp)

    def _get_or_create_room(
        self, name: str, req: room.CreateRoomRequest | None = None, *, dispatch: bool = False
    ) -> models.Room:
        """The room called name, created if needed; with dispatch, a new room gets a job for
        the workers registered without an agent name, as on the real server."""
        if name not in self.rooms:
            if dispatch and self.auto_dispatch:
                self._dispatch_soon(name, "", wait=False)
            now = time.time()
            self.rooms[name] = models.Room(
                sid=_new_id("RM_"),
                name=name,
                empty_timeout=req.empty_timeout if req and req.empty_timeout else 300,
                departure_timeout=req.departure_timeout if req and req.departure_timeout else 20,
                max_participants=req.max_participants if req else 0,
                metadata=req.metadata if req else "",
                creation_time=int(now),
                creation_time_ms=int(now * 1000),
            )
        return self.rooms[name]

    async def _handle_room_service(self, request: web.Request) -> web.Response:
        handlers: dict[str, tuple[type[Message], Callable[[Any, api.Claims | None], Message]]] = {
            "CreateRoom": (room.CreateRoomRequest, self._create_room),
            "ListRooms": (room.ListRoomsRequest, self._list_rooms),
            "DeleteRoom": (room.DeleteRoomRequest, self._delete_room),
            "ListParticipants": (room.ListParticipantsRequest, self._list_participants),
        }
        return await self._handle_twirp(request, handlers)

    async def _handle_dispatch_service(self, request: web.Request) -> web.Response:
        handlers: dict[str, tuple[type[Message], Callable[[Any, api.Claims | None], Message]]] = {
            "CreateDispatch": (agent_dispatch.CreateAgentDispatchRequest, self._create_dispatch),
        }
        return await self._handle_twirp(request, handlers)

    async def _handle_twirp(
        self,
        request: web.Request,
        handlers: dict[str, tuple[type[Message], Callable[[Any, api.Claims | None], Message]]],
    ) -> web.Response:
        method = request.match_info["method"]
        if method not in handlers:
            return _twirp_error(404, "bad_route", f"no handler for path {request.path}")
        req_cls, handler = handlers[method]

        is_json = request.content_type == "application/json"
        body = await request.read()
        try:
            req = req_cls()
            if is_json:
                json_format.Parse(body or b"{}", req, ignore_unknown_fields=True)
            else:
                req.ParseFromString(body)
        except (DecodeError, json_format.ParseError) as e:
            return _twirp_error(400, "malformed", f"could not decode request: {e}")

        try:
            resp = handler(req, self._claims(request))
        except _AuthError as e:
            await self._record_auth_failure(request, str(e))
            return _twirp_error(401, "unauthenticated", str(e))
        except LookupError as e:
            return _twirp_error(404, "not_found", str(e.args[0]))

        if is_json:
            text = json_format.MessageToJson(resp, preserving_proto_field_name=True)
            return web.Response(text=text, content_type="application/json")
        return web.Response(body=resp.SerializeToString(), content_type="application/protobuf")

    # grants per method, as pkg/service/roomservice.go checks them (EnsureCreate/List/Admin)
    @staticmethod
    def _require(claims: api.Claims | None, check: Callable[[api.VideoGrants], bool]) -> None:
        if claims is None or not check(claims.video):
            raise _AuthError("permissions denied")

    def _create_room(self, req: room.CreateRoomRequest, claims: api.Claims | None) -> Message:
        self._require(claims, lambda v: bool(v.room_create))
        # idempotent, like the real server
        return self._get_or_create_room(req.name, req, dispatch=True)

    def _list_rooms(self, req: room.ListRoomsRequest, claims: api.Claims | None) -> Message:
        self._require(claims, lambda v: bool(v.room_list))
        names = set(req.names)
        rooms = [r for n, r in self.rooms.items() if not names or n in names]
        return room.ListRoomsResponse(rooms=rooms)

    def _delete_room(self, req: room.DeleteRoomRequest, claims: api.Claims | None) -> Message:
        self._require(claims, lambda v: bool(v.room_create))  # sic: delete needs roomCreate
        if self.rooms.pop(req.room, None) is None:
            raise LookupError("room not found")
        self._spawn(self.sfu.close_room(req.room))  # everyone in it is told to leave
        return room.DeleteRoomResponse()

    def _list_participants(
        self, req: room.ListParticipantsRequest, claims: api.Claims | None
    ) -> Message:
        self._require(claims, lambda v: bool(v.room_admin) and v.room == req.room)
        people = [p.info for p in self.sfu.peers(req.room) if not p.closed]
        return room.ListParticipantsResponse(participants=people)

    def _create_dispatch(
        self, req: agent_dispatch.CreateAgentDispatchRequest, claims: api.Claims | None
    ) -> Message:
        # pkg/service/agent_dispatch_service.go: EnsureAdminPermission(ctx, req.Room)
        self._require(claims, lambda v: bool(v.room_admin) and v.room == req.room)
        self._get_or_create_room(req.room)  # the stand-in's simplification for a missing room
        dispatch = agent_dispatch.AgentDispatch(
            id=_new_id("AD_"),
            agent_name=req.agent_name,
            room=req.room,
            metadata=req.metadata,
            state=agent_dispatch.AgentDispatchState(created_at=time.time_ns()),
        )
        self.dispatches.append(dispatch)
        if self.auto_dispatch:
            self._dispatch_soon(req.room, req.agent_name, metadata=req.metadata, wait=True)
        return dispatch

    # ----------------------------------------------------------------- automatic dispatch

    def _spawn(self, coro: Any) -> asyncio.Task[Any]:
        task = asyncio.ensure_future(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)
        return task

    def _dispatch_soon(
        self, room_name: str, agent_name: str, *, metadata: str = "", wait: bool
    ) -> None:
        """Offer a job in the background; an explicit dispatch waits for its worker to
        register (the real server keeps it pending), a new room's does not."""

        async def dispatch() -> None:
            def matching() -> bool:
                return any(
                    w.connected and w.agent_name == agent_name and w.request.type == agent.JT_ROOM
                    for w in self.workers
                )

            try:
                if not matching():
                    if not wait:
                        return
                    await self._wait(matching, 60.0, f"a worker named {agent_name!r}")
                await self.dispatch_job(room_name, agent_name=agent_name, metadata=metadata)
            except (LookupError, RuntimeError, TimeoutError) as e:
                self.dispatch_errors.append(f"{room_name}/{agent_name!r}: {e}")

        self._spawn(dispatch())

    # ----------------------------------------------------------------- /rtc (media=False)

    async def _handle_rtc(self, request: web.Request) -> web.Response:
        self.rtc_requests.append(request.path)
        await self._notify()
        return web.Response(status=501, text=RTC_NOT_IMPLEMENTED)


def _now_ms() -> int:
    return int(time.time() * 1000)


def _twirp_error(status: int, code: str, msg: str) -> web.Response:
    return web.json_response({"code": code, "msg": msg}, status=status)


# ----------------------------------------------------------------- python -m


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tests.standins.livekit_server",
        description="LiveKit stand-in on 127.0.0.1 (dev keys devkey / secret), for tests only",
    )
    parser.add_argument("--port", type=int, default=7880)
    parser.add_argument("--api-key", default="devkey")
    parser.add_argument("--api-secret", default="secret")
    parser.add_argument("--no-media", action="store_true", help="refuse /rtc with a 501")
    parser.add_argument("--verbose", action="store_true", help="log signalling to stderr")
    args = parser.parse_args(argv)
    # "secret" is livekit-server --dev's own secret: too short for PyJWT's taste, on purpose
    warnings.filterwarnings("ignore", category=InsecureKeyLengthWarning)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )

    async def serve() -> None:
        standin = LiveKitStandIn(
            api_key=args.api_key,
            api_secret=args.api_secret,
            port=args.port,
            media=not args.no_media,
        )
        try:
            await standin.start()
        except OSError as e:
            print(
                f"livekit stand-in: cannot listen on 127.0.0.1:{args.port}: {e.strerror}",
                file=sys.stderr,
            )
            raise SystemExit(1) from None
        print(f"livekit stand-in ready on {standin.ws_url}", flush=True)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError):
                loop.add_signal_handler(sig, stop.set)
        try:
            await stop.wait()
        finally:
            await standin.aclose()

    asyncio.run(serve())
    return 0


if __name__ == "__main__":
    sys.exit(main())
