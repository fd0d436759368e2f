"""Rooms: who is in them, who hears whom, and when an empty room closes.

As on LiveKit's server, a room exists from its creation (`CreateRoom`, a first join, a
dispatch) until it is deleted or stays empty too long: `empty_timeout` seconds when nobody
ever joined, `departure_timeout` seconds after the last participant left. Agents do not keep
a room open by themselves (LiveKit calls them dependent participants): when only agents are
left, the room closes and they are told to leave, which ends their jobs.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable

from livekit.protocol import models, rtc
from livekit.protocol import room as room_api

from .auth import new_id
from .data import receivers, stamp
from .media import PublishedTrack
from .participant import Participant

__all__ = ["Room", "RoomManager"]

logger = logging.getLogger("stt_agent.devserver")

DEFAULT_EMPTY_TIMEOUT_S = 300  # LiveKit's defaults
DEFAULT_DEPARTURE_TIMEOUT_S = 20
DATA_LOG_SIZE = 1000


class Room:
    def __init__(self, info: models.Room) -> None:
        self.info = info
        self.participants: dict[str, Participant] = {}  # by identity
        self.data_log: list[models.DataPacket] = []  # the latest forwarded packets
        self.ever_joined = False
        self.empty_since = time.monotonic()

    @property
    def name(self) -> str:
        return self.info.name

    def visible(self) -> list[Participant]:
        return [p for p in self.participants.values() if not p.hidden and not p.closed]

    def find_track(self, sid: str) -> PublishedTrack | None:
        for participant in self.participants.values():
            if sid in participant.tracks:
                return participant.tracks[sid]
        return None

    def add(self, participant: Participant) -> None:
        self.participants[participant.identity] = participant
        # an agent alone does not count: its room waits the empty timeout, not the departure one
        self.ever_joined = self.ever_joined or not participant.is_agent
        self.info.num_participants = len(self.visible())

    async def broadcast_update(
        self, participant: Participant, *, include_self: bool = False
    ) -> None:
        if participant.hidden:
            return
        update = rtc.ParticipantUpdate(participants=[participant.info])
        for other in list(self.participants.values()):
            if other is not participant or include_self:
                await other.send(update=update)

    async def on_track_published(self, track: PublishedTrack) -> None:
        publisher = track.publisher
        await self.broadcast_update(publisher)
        for other in list(self.participants.values()):
            if other is publisher or other.closed:
                continue
            if other.auto_subscribe or track.info.sid in other.wanted:
                await other.subscribe(track)

    async def on_track_unpublished(self, track: PublishedTrack) -> None:
        for other in list(self.participants.values()):
            if other is not track.publisher:
                await other.unsubscribe(track.info.sid)
        await self.broadcast_update(track.publisher)
        await track.publisher.send(
            track_unpublished=rtc.TrackUnpublishedResponse(track_sid=track.info.sid)
        )

    def on_data(self, sender: Participant, kind: int, raw: bytes) -> None:
        packet = stamp(sender, kind, raw)
        if packet is None:
            return
        self.data_log.append(packet)
        del self.data_log[:-DATA_LOG_SIZE]
        others = {
            p.identity: p for p in self.participants.values() if p is not sender and not p.closed
        }
        data = packet.SerializeToString()
        for identity in receivers(packet, others):
            others[identity].data.send(kind, data)

    async def remove(self, participant: Participant) -> None:
        if self.participants.get(participant.identity) is participant:
            del self.participants[participant.identity]
        published = list(participant.tracks.values())
        await participant.close()
        for track in published:
            for other in list(self.participants.values()):
                await other.unsubscribe(track.info.sid)
        if not participant.hidden:
            update = rtc.ParticipantUpdate(participants=[participant.info])
            for other in list(self.participants.values()):
                await other.send(update=update)
        self.info.num_participants = len(self.visible())
        if not self.keeps_open():
            self.empty_since = time.monotonic()

    def keeps_open(self) -> bool:
        """Someone other than an agent is in the room."""
        return any(not p.is_agent and not p.closed for p in self.participants.values())

    def expired(self, now: float) -> str | None:
        """Why the room should close now, or None."""
        if self.keeps_open():
            return None
        if self.ever_joined:
            timeout, what = self.info.departure_timeout, "since the last participant left"
        else:
            timeout, what = self.info.empty_timeout, "and nobody joined"
        waited = now - self.empty_since
        return f"empty for {waited:.0f} s {what}" if waited >= timeout else None

    async def close(self, reason: int) -> None:
        """Tell everyone to leave, and close their connections."""
        for participant in list(self.participants.values()):
            await participant.send(
                leave=rtc.LeaveRequest(reason=reason, action=rtc.LeaveRequest.DISCONNECT)  # type: ignore[arg-type]
            )
            await self.remove(participant)
            with contextlib.suppress(Exception):
                await participant.ws.close()


class RoomManager:
    """Every room on the server, by name."""

    def __init__(self, on_created: Callable[[str], None] | None = None) -> None:
        self.rooms: dict[str, Room] = {}
        self.on_created = on_created  # e.g. automatic agent dispatch for a new room
        self._sweeper: asyncio.Task[None] | None = None

    def get(self, name: str) -> Room | None:
        return self.rooms.get(name)

    def get_or_create(
        self, name: str, req: room_api.CreateRoomRequest | None = None, *, dispatch: bool = True
    ) -> Room:
        """The room called `name`, created if needed (with `req`'s settings); a new room is
        announced to `on_created` when `dispatch`."""
        existing = self.rooms.get(name)
        if existing is not None:
            return existing
        now = time.time()
        info = models.Room(
            sid=new_id("RM_"),
            name=name,
            empty_timeout=req.empty_timeout
            if req and req.empty_timeout
            else DEFAULT_EMPTY_TIMEOUT_S,
            departure_timeout=(
                req.departure_timeout
                if req and req.departure_timeout
                else DEFAULT_DEPARTURE_TIMEOUT_S
            ),
            max_participants=req.max_participants if req else 0,
            metadata=req.metadata if req else "",
            creation_time=int(now),
            creation_time_ms=int(now * 1000),
        )
        room = self.rooms[name] = Room(info)
        logger.info("room %s created", name)
        if dispatch and self.on_created is not None:
            self.on_created(name)
        return room

    def detach(self, name: str, why: str) -> Room | None:
        """Take the room off the server (new joins make a new one); the caller closes it."""
        room = self.rooms.pop(name, None)
        if room is not None:
            logger.info("room %s closed (%s)", name, why)
        return room

    async def close(self, name: str, reason: int, why: str) -> None:
        room = self.detach(name, why)
        if room is not None:
            await room.close(reason)

    def start(self, every_s: float = 1.0) -> None:
        self._sweeper = asyncio.ensure_future(self._sweep(every_s))

    async def _sweep(self, every_s: float) -> None:
        while True:
            await asyncio.sleep(every_s)
            now = time.monotonic()
            for name, room in list(self.rooms.items()):
                why = room.expired(now)
                if why is None:
                    continue
                try:
                    await self.close(name, models.ROOM_CLOSED, why)
                except Exception as e:  # one room failing to close must not stop the others
                    logger.warning(
                        "room %s did not close cleanly (%s: %s)", name, type(e).__name__, e
                    )

    async def aclose(self) -> None:
        if self._sweeper is not None:
            self._sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sweeper
        for name in list(self.rooms):
            await self.close(name, models.SERVER_SHUTDOWN, "server stopped")
