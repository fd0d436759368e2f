"""The `/rtc` websocket: joining a room, and everything a participant says until it leaves.

LiveKit's dual-peer-connection signalling ("v0", ``pkg/service/rtcservice.go``): ``GET /rtc``
upgrades to a websocket of `livekit.SignalRequest` / `livekit.SignalResponse` protobufs (binary
frames; LiveKit also takes them as JSON in text frames). The token comes as ``access_token``
or ``Authorization: Bearer`` and must carry ``roomJoin``; a refusal is an HTTP 401 on the
upgrade with LiveKit's reason, which ``GET /rtc/validate`` also gives (the browser client asks
it when the websocket fails). ``/rtc/v1`` (single peer connection) answers 404, as on a server
without it, and the clients fall back to ``/rtc``. A reconnect (``reconnect=1``) is refused
the same way, and the client joins afresh.

A participant that goes quiet (no ping, no message) for ``ping_timeout`` seconds is removed,
as a real server does; a message that is not a SignalRequest closes its websocket with 1003.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import time
from collections.abc import Callable, Coroutine
from typing import Any

from aiohttp import WSCloseCode, WSMsgType, web
from google.protobuf import json_format
from google.protobuf.message import DecodeError
from livekit.protocol import models, rtc

from .auth import AuthError, Keys, room_join_claims
from .participant import Participant
from .rooms import Room, RoomManager

__all__ = ["Signalling"]

logger = logging.getLogger("stt_agent.devserver")

MAX_SIGNAL_MESSAGE = 1 << 20  # an offer with every codec is a few kB


class _Leave(Exception):
    """The client sent `leave`."""


class Signalling:
    def __init__(
        self,
        keys: Keys,
        rooms: RoomManager,
        server_info: models.ServerInfo,
        spawn: Callable[[Coroutine[Any, Any, None]], asyncio.Task[None]],
        *,
        ping_interval_s: int,
        ping_timeout_s: int,
        on_refused: Callable[[str, str], None],
    ) -> None:
        self.keys, self.rooms, self.server_info, self._spawn = keys, rooms, server_info, spawn
        self.ping_interval_s, self.ping_timeout_s = ping_interval_s, ping_timeout_s
        self.on_refused = on_refused  # (path, reason): for the log, and for tests
        self.refused: collections.deque[str] = collections.deque(maxlen=100)

    def routes(self) -> list[web.RouteDef]:
        # livekit-client in a browser opens `//rtc` when the URL ends with a slash; LiveKit's
        # server strips the extra slash, so both spellings answer here.
        found = []
        for prefix in ("", "/"):
            found += [
                web.get(prefix + "/rtc", self.handle_rtc),
                web.get(prefix + "/rtc/validate", self.handle_validate),
                web.get(prefix + "/rtc/v1", self.handle_v1),
                web.get(prefix + "/rtc/v1/validate", self.handle_validate),
            ]
        return found

    def _authorise(self, request: web.Request) -> tuple[Any, str]:
        return room_join_claims(self.keys.claims_of(request), request.query.get("room", ""))

    def _refuse(self, request: web.Request, reason: str) -> web.Response:
        self.refused.append(reason)
        self.on_refused(request.path, reason)
        return web.Response(status=401, text=reason)

    async def handle_validate(self, request: web.Request) -> web.Response:
        try:
            self._authorise(request)
        except AuthError as e:
            return self._refuse(request, str(e))
        return web.Response(text="success")

    async def handle_v1(self, request: web.Request) -> web.Response:
        # single-peer-connection signalling is not implemented: a 404 makes the SDK use /rtc
        return web.Response(status=404, text="404 page not found")

    async def handle_rtc(self, request: web.Request) -> web.StreamResponse:
        ws = web.WebSocketResponse(max_msg_size=MAX_SIGNAL_MESSAGE)
        if not ws.can_prepare(request).ok:
            return web.Response(status=400, text="websocket upgrade required")
        try:
            claims, room_name = self._authorise(request)
        except AuthError as e:
            return self._refuse(request, str(e))
        if request.query.get("reconnect") in ("1", "true"):
            # no session resumption here: refused, and the SDK falls back to a full rejoin
            return web.Response(status=404, text="no session to resume")

        await ws.prepare(request)
        room = self.rooms.get_or_create(room_name)
        previous = room.participants.get(claims.identity)
        if previous is not None:  # the same identity joins again: the old one is told to leave
            await previous.send(
                leave=rtc.LeaveRequest(
                    reason=models.DUPLICATE_IDENTITY,
                    action=rtc.LeaveRequest.DISCONNECT,
                )
            )
            await room.remove(previous)
            await previous.ws.close()
        participant = Participant(room, claims, ws, request.query, self._spawn)
        room.add(participant)
        kind = " (agent)" if participant.is_agent else ""
        logger.info("%s joined room %s%s", participant.identity, room.name, kind)
        reason = "connection closed"
        watchdog = self._spawn(self._watch(participant))
        try:
            await self._join(participant, room)
            reason = await self._serve(participant, ws)
        finally:
            watchdog.cancel()
            if participant.timed_out:
                reason = f"no ping for {self.ping_timeout_s} s"
            if room.participants.get(participant.identity) is participant:
                logger.info("%s left room %s (%s)", participant.identity, room.name, reason)
            await room.remove(participant)
            if not ws.closed:
                await ws.close()
        return ws

    async def _join(self, participant: Participant, room: Room) -> None:
        """Answer the join, then start the subscriber connection (subscriber primary)."""
        room_info = models.Room()
        room_info.CopyFrom(room.info)
        others = [p.info for p in room.visible() if p is not participant]
        join = rtc.JoinResponse(
            room=room_info,
            participant=participant.info,
            other_participants=others,
            server_version=self.server_info.version,
            server_info=self.server_info,
            server_region=self.server_info.region,
            subscriber_primary=participant.can_subscribe,
            fast_publish=participant.can_publish,
            ping_interval=self.ping_interval_s,
            ping_timeout=self.ping_timeout_s,
        )
        await participant.send(join=join)
        participant.start_subscriber()
        await room.broadcast_update(participant)

    async def _serve(self, participant: Participant, ws: web.WebSocketResponse) -> str:
        """Handle the participant's messages until it leaves; returns why it left."""
        async for frame in ws:
            participant.last_seen = time.monotonic()
            try:
                if frame.type == WSMsgType.BINARY:
                    request = rtc.SignalRequest.FromString(frame.data)
                elif frame.type == WSMsgType.TEXT:
                    request = json_format.Parse(frame.data, rtc.SignalRequest())
                else:
                    break  # an error frame: the connection is gone
            except (DecodeError, json_format.ParseError, UnicodeDecodeError):
                logger.info("%s sent something that is not a SignalRequest", participant.identity)
                await ws.close(code=WSCloseCode.UNSUPPORTED_DATA, message=b"invalid signal request")
                return "invalid signal request"
            try:
                await self._handle(participant, request)
            except _Leave:
                return "leave"
            except Exception as e:  # one bad request (an SDP aiortc cannot parse...) is
                # refused alone; the participant stays, and the log gets one line, no traceback
                which = request.WhichOneof("message")
                logger.warning(
                    "%s: %s refused (%s: %s)", participant.identity, which, type(e).__name__, e
                )
        return "connection closed"

    async def _watch(self, participant: Participant) -> None:
        """Close the websocket of a participant that went quiet for the ping timeout."""
        while not participant.closed:
            await asyncio.sleep(self.ping_interval_s)
            if time.monotonic() - participant.last_seen > self.ping_timeout_s:
                participant.timed_out = True
                with contextlib.suppress(Exception):
                    await participant.ws.close(code=WSCloseCode.GOING_AWAY, message=b"ping timeout")
                return

    async def _handle(self, participant: Participant, request: rtc.SignalRequest) -> None:
        which = request.WhichOneof("message")
        if which == "offer":
            await participant.on_publisher_offer(request.offer)
        elif which == "answer":
            await participant.on_subscriber_answer(request.answer)
        elif which == "trickle":
            await participant.on_trickle(request.trickle)
        elif which == "add_track":
            await participant.on_add_track(request.add_track)
        elif which == "subscription":
            await participant.on_subscription(request.subscription)
        elif which == "mute":
            await participant.on_mute(request.mute)
        elif which == "ping":
            await participant.send(pong=int(time.time() * 1000))
        elif which == "ping_req":
            pong = rtc.Pong(
                last_ping_timestamp=request.ping_req.timestamp, timestamp=int(time.time() * 1000)
            )
            await participant.send(pong_resp=pong)
        elif which == "update_metadata":
            await self._update_metadata(participant, request.update_metadata)
        elif which == "leave":
            raise _Leave()
        # the rest (layers, track settings, sync_state, simulate...) changes nothing here, and
        # a real server does not fail on it either

    async def _update_metadata(
        self, participant: Participant, update: rtc.UpdateParticipantMetadata
    ) -> None:
        if not participant.info.permission.can_update_metadata:
            return
        if update.metadata:
            participant.info.metadata = update.metadata
        if update.name:
            participant.info.name = update.name
        participant.info.attributes.update(dict(update.attributes))
        participant.changed()
        await participant.room.broadcast_update(participant, include_self=True)
