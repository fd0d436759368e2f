"""LiveKit's server APIs over Twirp: RoomService and AgentDispatchService.

What livekit-api's `LiveKitAPI` (and `lk`, curl, the JS server SDK) call: ``POST
/twirp/livekit.RoomService/<Method>`` with a protobuf or JSON body and a bearer token. Each
method wants the grant LiveKit's server wants (``pkg/service/roomservice.go``,
``agent_dispatch_service.go``), and every refusal is a Twirp JSON error: ``{"code", "msg"}``
with LiveKit's wording.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from aiohttp import web
from google.protobuf import json_format
from google.protobuf.message import DecodeError, Message
from livekit.protocol import agent_dispatch, models, room

from .agents import AgentService
from .auth import AuthError, Claims, Keys, new_id, require
from .rooms import RoomManager

__all__ = ["TwirpService", "twirp_error"]

MAX_BODY = 1 << 20
Handler = Callable[[Any, Claims | None], Message]


def twirp_error(status: int, code: str, msg: str) -> web.Response:
    return web.json_response({"code": code, "msg": msg}, status=status)


class TwirpService:
    def __init__(
        self,
        keys: Keys,
        rooms: RoomManager,
        agents: AgentService,
        spawn: Callable[[Any], Any],
        on_refused: Callable[[str, str], None],
    ) -> None:
        self.keys, self.rooms, self.agents, self._spawn = keys, rooms, agents, spawn
        self.on_refused = on_refused
        self.dispatches: list[agent_dispatch.AgentDispatch] = []  # the latest CreateDispatch
        self._methods: dict[str, tuple[type[Message], Handler]] = {
            "livekit.RoomService/CreateRoom": (room.CreateRoomRequest, self._create_room),
            "livekit.RoomService/ListRooms": (room.ListRoomsRequest, self._list_rooms),
            "livekit.RoomService/DeleteRoom": (room.DeleteRoomRequest, self._delete_room),
            "livekit.RoomService/ListParticipants": (
                room.ListParticipantsRequest,
                self._list_participants,
            ),
            "livekit.AgentDispatchService/CreateDispatch": (
                agent_dispatch.CreateAgentDispatchRequest,
                self._create_dispatch,
            ),
        }

    def routes(self) -> list[web.RouteDef]:
        return [web.post("/twirp/{service}/{method}", self.handle)]

    async def handle(self, request: web.Request) -> web.Response:
        name = f"{request.match_info['service']}/{request.match_info['method']}"
        if name not in self._methods:
            return twirp_error(404, "bad_route", f"no handler for path {request.path}")
        req_cls, handler = self._methods[name]
        is_json = request.content_type == "application/json"
        if (request.content_length or 0) > MAX_BODY:
            return twirp_error(400, "malformed", "request body too large")
        body = await request.read()
        try:
            req = req_cls()
            if is_json:
                json_format.Parse(body or b"{}", req, ignore_unknown_fields=True)
            else:
                req.ParseFromString(body)
        except (DecodeError, json_format.ParseError, UnicodeDecodeError) as e:
            return twirp_error(400, "malformed", f"could not decode request: {e}")
        try:
            resp = handler(req, self.keys.claims_of(request))
        except AuthError as e:
            self.on_refused(request.path, str(e))
            return twirp_error(401, "unauthenticated", str(e))
        except LookupError as e:
            return twirp_error(404, "not_found", str(e.args[0]))
        except ValueError as e:
            return twirp_error(400, "invalid_argument", str(e))
        if is_json:
            text = json_format.MessageToJson(resp, preserving_proto_field_name=True)
            return web.Response(text=text, content_type="application/json")
        return web.Response(body=resp.SerializeToString(), content_type="application/protobuf")

    # RoomService, with the grants pkg/service/roomservice.go checks

    def _create_room(self, req: room.CreateRoomRequest, claims: Claims | None) -> Message:
        require(claims, lambda v: bool(v.room_create))
        if not req.name:
            raise ValueError("room name cannot be empty")
        return self.rooms.get_or_create(req.name, req).info  # idempotent, as on LiveKit

    def _list_rooms(self, req: room.ListRoomsRequest, claims: Claims | None) -> Message:
        require(claims, lambda v: bool(v.room_list))
        names = set(req.names)
        found = [r.info for n, r in self.rooms.rooms.items() if not names or n in names]
        return room.ListRoomsResponse(rooms=found)

    def _delete_room(self, req: room.DeleteRoomRequest, claims: Claims | None) -> Message:
        require(claims, lambda v: bool(v.room_create))  # sic: deleting needs roomCreate
        gone = self.rooms.detach(req.room, "deleted")
        if gone is None:
            raise LookupError("room not found")
        # everyone in it is told to leave, in the background, as LiveKit does
        self._spawn(gone.close(models.ROOM_DELETED))
        return room.DeleteRoomResponse()

    def _list_participants(
        self, req: room.ListParticipantsRequest, claims: Claims | None
    ) -> Message:
        require(claims, lambda v: bool(v.room_admin) and v.room == req.room)
        found = self.rooms.get(req.room)
        people = (
            [] if found is None else [p.info for p in found.participants.values() if not p.closed]
        )
        return room.ListParticipantsResponse(participants=people)

    # AgentDispatchService: EnsureAdminPermission(ctx, req.Room)

    def _create_dispatch(
        self, req: agent_dispatch.CreateAgentDispatchRequest, claims: Claims | None
    ) -> Message:
        require(claims, lambda v: bool(v.room_admin) and v.room == req.room)
        self.rooms.get_or_create(req.room, dispatch=False)  # a missing room is created
        dispatch = agent_dispatch.AgentDispatch(
            id=new_id("AD_"),
            agent_name=req.agent_name,
            room=req.room,
            metadata=req.metadata,
            state=agent_dispatch.AgentDispatchState(created_at=time.time_ns()),
        )
        self.dispatches.append(dispatch)
        del self.dispatches[:-1000]
        self.agents.dispatch_soon(req.room, req.agent_name, metadata=req.metadata, wait=True)
        return dispatch
