"""Agent workers: the `/agent` websocket, and jobs dispatched to the workers registered there.

The worker protocol of livekit-agents (``livekit.WorkerMessage`` in, ``livekit.ServerMessage``
out, binary protobufs): a worker authenticates with a token carrying the ``agent`` grant,
registers (its agent name, job type, permissions), reports its load, and is offered jobs:
AvailabilityRequest -> AvailabilityResponse -> JobAssignment with a room-join token.

Dispatch follows LiveKit's server: a worker registered *without* an agent name gets a job for
every new room; a named worker only gets explicit dispatches (`CreateDispatch`, which waits
for such a worker to register, as LiveKit keeps the dispatch pending). Offers go to the
matching workers one after the other until one accepts.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

from aiohttp import WSCloseCode, WSMsgType, web
from google.protobuf.message import DecodeError
from livekit.api import VideoGrants
from livekit.protocol import agent, models

from .auth import AuthError, Keys, new_id
from .rooms import RoomManager

__all__ = ["AgentService", "Worker"]

logger = logging.getLogger("stt_agent.devserver")

AVAILABILITY_TIMEOUT_S = 10.0
DISPATCH_WAIT_S = 60.0  # how long an explicit dispatch waits for its worker to register
HISTORY = 1000  # job updates and ended workers kept for `workers` / `job_updates`


@dataclass
class Worker:
    """One worker websocket that completed registration."""

    worker_id: str
    request: agent.RegisterWorkerRequest  # everything the worker sent in `register`
    ws: web.WebSocketResponse = field(repr=False)
    connected: bool = True
    status_updates: collections.deque[agent.UpdateWorkerStatus] = field(
        default_factory=lambda: collections.deque(maxlen=100)
    )
    migrated_jobs: list[str] = field(default_factory=list)
    # aiohttp does not serialise concurrent writes of one websocket, so sends take this lock
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
        async with self._send_lock:
            await self.ws.send_bytes(msg.SerializeToString())


class AgentService:
    def __init__(
        self,
        keys: Keys,
        rooms: RoomManager,
        server_info: models.ServerInfo,
        spawn: Callable[[Coroutine[Any, Any, None]], asyncio.Task[None]],
        on_refused: Callable[[str, str], None],
    ) -> None:
        self.keys, self.rooms, self.server_info, self._spawn = keys, rooms, server_info, spawn
        self.on_refused = on_refused
        self.auto_dispatch = True
        self.workers: list[Worker] = []
        self.jobs: dict[str, agent.Job] = {}
        self.job_updates: collections.deque[tuple[str, str, str]] = collections.deque(
            maxlen=HISTORY
        )  # (job id, JobStatus name, error)
        self.dispatch_errors: collections.deque[str] = collections.deque(maxlen=100)
        self._pending: dict[str, asyncio.Future[agent.AvailabilityResponse]] = {}
        self._registered = asyncio.Event()  # set on every registration, for waiting dispatches

    def connected(self, agent_name: str) -> list[Worker]:
        return [
            w
            for w in self.workers
            if w.connected and w.agent_name == agent_name and w.request.type == agent.JT_ROOM
        ]

    # ------------------------------------------------------------------ /agent

    async def handle(self, request: web.Request) -> web.StreamResponse:
        # the heartbeat closes the websocket of a worker that vanished without closing it
        ws = web.WebSocketResponse(heartbeat=30.0, max_msg_size=1 << 20)
        if not ws.can_prepare(request).ok:
            return web.Response(status=404)  # LiveKit's server 404s non-websocket requests
        try:
            claims = self.keys.claims_of(request)
            if claims is None or claims.video is None or not claims.video.agent:
                raise AuthError("permissions denied")
        except AuthError as e:
            self.on_refused(request.path, str(e))
            return web.Response(status=401, text=str(e))

        await ws.prepare(request)
        worker: Worker | None = None
        try:
            async for frame in ws:
                if frame.type != WSMsgType.BINARY:
                    continue  # the protocol is binary protobuf only
                try:
                    msg = agent.WorkerMessage.FromString(frame.data)
                except DecodeError:
                    logger.info("an agent worker sent something that is not a WorkerMessage")
                    await ws.close(code=WSCloseCode.UNSUPPORTED_DATA, message=b"invalid message")
                    break
                if msg.WhichOneof("message") == "register":
                    worker = await self._register(msg.register, ws)
                elif worker is None:
                    # LiveKit requires `register` first; anything else is a protocol error
                    await ws.close(code=WSCloseCode.POLICY_VIOLATION, message=b"register first")
                    break
                else:
                    await self._on_message(worker, msg)
        finally:
            if worker is not None:
                worker.connected = False
                logger.info("agent worker %s disconnected", worker.worker_id)
                self._forget_old_workers()
        return ws

    async def _register(
        self, req: agent.RegisterWorkerRequest, ws: web.WebSocketResponse
    ) -> Worker:
        worker = Worker(new_id("AW_"), req, ws)
        self.workers.append(worker)
        reply = agent.RegisterWorkerResponse(
            worker_id=worker.worker_id, server_info=self.server_info
        )
        await worker.send(agent.ServerMessage(register=reply))
        named = f"agent name {req.agent_name!r}" if req.agent_name else "no agent name"
        logger.info("agent worker %s registered (%s)", worker.worker_id, named)
        self._registered.set()
        self._registered = asyncio.Event()
        return worker

    def _forget_old_workers(self) -> None:
        gone = [w for w in self.workers if not w.connected]
        for w in gone[: max(0, len(gone) - HISTORY)]:
            self.workers.remove(w)

    async def _on_message(self, worker: Worker, msg: agent.WorkerMessage) -> None:
        which = msg.WhichOneof("message")
        if which == "availability":
            fut = self._pending.get(msg.availability.job_id)
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
            now_ms = int(time.time() * 1000)
            pong = agent.WorkerPong(last_timestamp=msg.ping.timestamp, timestamp=now_ms)
            await worker.send(agent.ServerMessage(pong=pong))
        elif which == "migrate_job":
            worker.migrated_jobs.extend(msg.migrate_job.job_ids)
        # simulate_job is a LiveKit Cloud feature; ignored like an older server would

    # ------------------------------------------------------------------ dispatch

    async def dispatch_job(
        self,
        room_name: str,
        *,
        participant_identity: str | None = None,
        agent_name: str = "",
        metadata: str = "",
        timeout: float = AVAILABILITY_TIMEOUT_S,
    ) -> str:
        """Offer a room job to the workers registered under `agent_name`, one after the other,
        and assign it to the first that accepts; returns the job id.

        LookupError when no worker matches, RuntimeError when every one declined, TimeoutError
        when one does not answer within `timeout`.
        """
        candidates = self.connected(agent_name)
        if not candidates:
            raise LookupError(f"no registered room worker with agent name {agent_name!r}")
        room = self.rooms.get_or_create(room_name, dispatch=False)
        job = agent.Job(
            id=new_id("AJ_"),
            dispatch_id=new_id("AD_"),
            type=agent.JT_ROOM,
            room=room.info,
            agent_name=agent_name,
            metadata=metadata,
            state=agent.JobState(status=agent.JS_PENDING, updated_at=time.time_ns()),
        )
        if participant_identity is not None:
            job.participant.CopyFrom(
                models.ParticipantInfo(sid=new_id("PA_"), identity=participant_identity)
            )
        for worker in candidates:
            fut = asyncio.get_running_loop().create_future()
            self._pending[job.id] = fut
            try:
                await worker.send(
                    agent.ServerMessage(availability=agent.AvailabilityRequest(job=job))
                )
                async with asyncio.timeout(timeout):
                    answer = await fut
            finally:
                self._pending.pop(job.id, None)
            if not answer.available:
                continue
            job.state.worker_id = worker.worker_id
            job.state.participant_identity = answer.participant_identity or f"agent-{job.id}"
            job.state.started_at = time.time_ns()
            self.jobs[job.id] = job
            while len(self.jobs) > HISTORY:
                del self.jobs[next(iter(self.jobs))]
            # no url: the worker joins the room on the URL it registered with, which is right
            # whichever of the server's addresses it used
            token = self._agent_token(job, worker, answer)
            await worker.send(
                agent.ServerMessage(assignment=agent.JobAssignment(job=job, url="", token=token))
            )
            logger.info("job for room %s assigned to agent worker %s", room_name, worker.worker_id)
            return job.id
        raise RuntimeError(f"every worker declined job {job.id} for room {room_name!r}")

    async def terminate_job(self, job_id: str) -> None:
        """Ask the worker running `job_id` to end it."""
        job = self.jobs[job_id]
        worker = next(w for w in self.workers if w.worker_id == job.state.worker_id)
        await worker.send(agent.ServerMessage(termination=agent.JobTermination(job_id=job_id)))

    def _agent_token(
        self, job: agent.Job, worker: Worker, answer: agent.AvailabilityResponse
    ) -> str:
        """The agent participant's room token, from the worker's answer and its registered
        permissions, as LiveKit builds it for an assignment."""
        perms = worker.permissions
        token = (
            self.keys.token()
            .with_identity(job.state.participant_identity)
            .with_name(answer.participant_name)
            .with_metadata(answer.participant_metadata)
            .with_attributes(dict(answer.participant_attributes))
            .with_kind("agent")
            .with_grants(
                VideoGrants(
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
        return self.keys.sign(token)

    def dispatch_soon(
        self, room_name: str, agent_name: str, *, metadata: str = "", wait: bool
    ) -> None:
        """Offer a job in the background. An explicit dispatch (`wait`) waits for its worker
        to register; a new room's automatic one does not."""
        if not self.auto_dispatch:
            return

        async def dispatch() -> None:
            try:
                deadline = time.monotonic() + DISPATCH_WAIT_S
                while not self.connected(agent_name):
                    if not wait or time.monotonic() > deadline:
                        if wait:
                            raise TimeoutError(f"no worker named {agent_name!r} registered")
                        return
                    registered = self._registered
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(registered.wait(), deadline - time.monotonic())
                await self.dispatch_job(room_name, agent_name=agent_name, metadata=metadata)
            except (LookupError, RuntimeError, TimeoutError, ConnectionError) as e:
                self.dispatch_errors.append(f"{room_name}/{agent_name!r}: {e}")
                logger.info("no agent for room %s: %s", room_name, e)

        self._spawn(dispatch())

    async def aclose(self) -> None:
        for fut in self._pending.values():
            fut.cancel()
        for w in self.workers:
            if not w.ws.closed:
                await w.ws.close(code=WSCloseCode.GOING_AWAY, message=b"server shutting down")
