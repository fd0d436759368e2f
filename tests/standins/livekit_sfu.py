"""Room signalling and media for the LiveKit stand-in: a small SFU on aiortc, for tests only.

It speaks LiveKit's dual-peer-connection signalling ("v0", `/rtc`) the way the real server does
(livekit/livekit ``pkg/rtc``, ``pkg/service/rtcservice.go``) for what the Rust SDK inside the
``livekit`` wheel (``livekit-api/src/signal_client``, ``livekit/src/rtc_engine``) sends:

* ``GET /rtc`` upgrades to a websocket of binary ``livekit.SignalRequest`` /
  ``livekit.SignalResponse`` protobufs. The token (``access_token`` query parameter or
  ``Authorization: Bearer``) must be signed with the API secret and carry ``roomJoin`` for the
  room; a refusal is an HTTP 401 on the upgrade. ``GET /rtc/validate`` answers like the real one.
* ``/rtc/v1`` (single peer connection mode, which the SDK tries first) answers 404, as a server
  without it does, and the SDK falls back to ``/rtc``.
* Join: ``JoinResponse`` with ``subscriber_primary`` (the server offers the subscriber peer
  connection at once, with its own ``_reliable``/``_lossy`` data channels) and ``fast_publish``
  (the client offers its publisher peer connection at once, with its data channels).
* The client's publisher offers are answered; trickled candidates are added to the right
  peer connection (queued until its remote description is set); ``AddTrackRequest`` gets a
  ``TrackPublishedResponse`` with a ``TR_`` sid, and the track becomes visible to the others
  (``ParticipantUpdate``) when its media arrives, as on the real server.
* Each published audio track is relayed (``aiortc.contrib.media.MediaRelay``) to every other
  participant that subscribes to it (automatically with ``auto_subscribe``, else through
  ``UpdateSubscription``): the server adds a send-only m-line to their subscriber peer
  connection, whose msid is ``<participant sid>|<track sid>`` as the SDK expects, and offers.
* Data packets arriving on a client's publisher data channels are stamped with the sender's
  sid and identity (the server's word, not the client's), filtered by destination identities
  and sent on the receivers' subscriber data channel of the same kind. Text streams (e.g.
  ``lk.transcription``) are such packets (stream header, chunks, trailer).
* Pings are answered; ``leave`` or a closed websocket removes the participant and tells the
  others (``ParticipantInfo.state = DISCONNECTED``).

Simplifications, on purpose: audio is decoded and re-encoded by aiortc (a real SFU forwards
RTP untouched); video tracks are accepted but not relayed; no simulcast, speaker detection,
connection quality, resume/reconnect (a reconnecting client is refused and joins afresh), no
per-track permissions; capabilities and ``client_protocol`` are not echoed to other clients,
so every sender uses the data-stream format every client understands.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
import uuid
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from aiohttp import WSMsgType, web
from aiortc import (
    MediaStreamTrack,
    RTCConfiguration,
    RTCDataChannel,
    RTCPeerConnection,
    RTCRtpSender,
    RTCSessionDescription,
)
from aiortc.contrib.media import MediaRelay
from aiortc.mediastreams import MediaStreamError
from aiortc.rtcconfiguration import RTCBundlePolicy
from aiortc.sdp import candidate_from_sdp
from livekit.protocol import models, rtc

if TYPE_CHECKING:
    from .livekit_server import LiveKitStandIn

logger = logging.getLogger("livekit_standin.sfu")

# the real server's defaults (pkg/rtc/room.go PingIntervalSeconds / PingTimeoutSeconds)
_PING_INTERVAL_S = 5
_PING_TIMEOUT_S = 15
_ANSWER_TIMEOUT_S = 15.0
RELIABLE, LOSSY = "_reliable", "_lossy"
_KIND_BY_LABEL = {RELIABLE: models.DataPacket.RELIABLE, LOSSY: models.DataPacket.LOSSY}
_LABEL_BY_KIND = {v: k for k, v in _KIND_BY_LABEL.items()}
_PARTICIPANT_KINDS = {
    "standard": models.ParticipantInfo.STANDARD,
    "agent": models.ParticipantInfo.AGENT,
    "ingress": models.ParticipantInfo.INGRESS,
    "egress": models.ParticipantInfo.EGRESS,
    "sip": models.ParticipantInfo.SIP,
}


def _new_id(prefix: str) -> str:
    return prefix + uuid.uuid4().hex[:12]


def _grant(value: bool | None, default: bool) -> bool:
    # the real server treats a missing canPublish/canSubscribe/canPublishData as allowed
    return default if value is None else bool(value)


@dataclass
class PublishedTrack:
    """A track a participant publishes, once its media reached the SFU."""

    info: models.TrackInfo
    publisher: Peer
    source: MediaStreamTrack
    relay: MediaRelay = field(default_factory=MediaRelay)
    frames_received: int = 0  # decoded frames that reached the SFU (for tests)
    samples_received: int = 0
    _drain: asyncio.Task[None] | None = field(default=None, repr=False)

    def start(self) -> None:
        # Always consume the source: aiortc queues received frames without bound until read.
        self._drain = asyncio.ensure_future(self._count(self.relay.subscribe(self.source, False)))

    async def _count(self, proxy: MediaStreamTrack) -> None:
        while True:
            try:
                frame = await proxy.recv()
            except MediaStreamError:
                return
            self.frames_received += 1
            self.samples_received += getattr(frame, "samples", 0)

    def stop(self) -> None:
        if self._drain is not None:
            self._drain.cancel()


@dataclass
class Subscription:
    track: PublishedTrack
    sender: RTCRtpSender
    proxy: MediaStreamTrack


class Peer:
    """One participant: its signalling websocket and its publisher and subscriber connections."""

    def __init__(
        self, sfu: Sfu, room: SfuRoom, claims: Any, ws: web.WebSocketResponse, query: Any
    ) -> None:
        self.sfu, self.room, self.ws = sfu, room, ws
        video = claims.video
        self.can_publish = _grant(video.can_publish, True)
        self.can_subscribe = _grant(video.can_subscribe, True)
        self.can_publish_data = _grant(video.can_publish_data, True)
        self.hidden = bool(video.hidden)
        self.auto_subscribe = query.get("auto_subscribe", "1") not in ("0", "false")
        self.sdk = query.get("sdk", "")
        self.protocol = int(query.get("protocol", "0") or 0)
        now = time.time()
        self.info = models.ParticipantInfo(
            sid=_new_id("PA_"),
            identity=claims.identity,
            name=claims.name or "",
            metadata=claims.metadata or "",
            attributes=dict(claims.attributes or {}),
            state=models.ParticipantInfo.JOINED,
            joined_at=int(now),
            joined_at_ms=int(now * 1000),
            version=1,
            kind=_PARTICIPANT_KINDS.get((claims.kind or "standard").lower(), 0),
            permission=models.ParticipantPermission(
                can_subscribe=self.can_subscribe,
                can_publish=self.can_publish,
                can_publish_data=self.can_publish_data,
                hidden=self.hidden,
                agent=bool(video.agent),
                can_update_metadata=bool(video.can_update_own_metadata),
            ),
        )
        config = RTCConfiguration(iceServers=[], bundlePolicy=RTCBundlePolicy.MAX_BUNDLE)
        self.pub_pc = RTCPeerConnection(config)
        self.sub_pc = RTCPeerConnection(config)
        self.sub_channels: dict[str, RTCDataChannel] = {}
        self._pending_data: dict[str, list[bytes]] = {RELIABLE: [], LOSSY: []}
        self.pending_tracks: dict[str, models.TrackInfo] = {}  # by the client's cid
        self.tracks: dict[str, PublishedTrack] = {}  # published, by track sid
        self.subscriptions: dict[str, Subscription] = {}  # by track sid
        self.wanted: set[str] = set()  # track sids asked for, maybe not published yet
        self.data_received = 0
        self.closed = False
        self._send_lock = asyncio.Lock()
        self._trickles: dict[int, list[Any]] = {rtc.PUBLISHER: [], rtc.SUBSCRIBER: []}
        self._negotiating: asyncio.Task[None] | None = None
        self._renegotiate = False
        self._answer: asyncio.Future[None] | None = None
        self._offer_id = 0
        self.pub_pc.on("track", self._on_track)
        self.pub_pc.on("datachannel", self._on_datachannel)
        self.pub_pc.on("connectionstatechange", self._on_connection_state)
        self.sub_pc.on("connectionstatechange", self._on_connection_state)

    @property
    def identity(self) -> str:
        return self.info.identity

    @property
    def sid(self) -> str:
        return self.info.sid

    def __repr__(self) -> str:
        return f"<Peer {self.identity} {self.sid} in {self.room.name}>"

    # ------------------------------------------------------------------ sending

    async def send(self, **message: Any) -> None:
        if self.closed or self.ws.closed:
            return
        if not {"pong", "pong_resp"} & message.keys():
            logger.debug("%s <- %s", self, ", ".join(message))
        data = rtc.SignalResponse(**message).SerializeToString()
        async with self._send_lock:
            with contextlib.suppress(ConnectionError, RuntimeError):
                await self.ws.send_bytes(data)

    def _changed(self) -> None:
        self.info.version += 1

    # ------------------------------------------------------------------ joining

    async def join(self) -> None:
        """Answer the join, then start the subscriber connection (subscriber primary)."""
        room_info = models.Room()
        room_info.CopyFrom(self.room.info)
        room_info.num_participants = len(self.room.visible_peers())
        standin = self.sfu.standin
        join = rtc.JoinResponse(
            room=room_info,
            participant=self.info,
            other_participants=[p.info for p in self.room.visible_peers() if p is not self],
            server_version=standin._server_info.version,
            server_info=standin._server_info,
            server_region=standin._server_info.region,
            subscriber_primary=self.can_subscribe,
            fast_publish=self.can_publish,
            ping_interval=_PING_INTERVAL_S,
            ping_timeout=_PING_TIMEOUT_S,
        )
        await self.send(join=join)
        if self.can_subscribe:
            # the server's data channels on the subscriber connection carry data to this client
            for label, options in ((RELIABLE, {"ordered": True}), (LOSSY, {"ordered": False})):
                if label == LOSSY:
                    options["maxRetransmits"] = 0
                channel = self.sub_pc.createDataChannel(label, **options)
                channel.on("open", lambda label=label: self._flush_data(label))
                self.sub_channels[label] = channel
            self.negotiate_subscriber()
        await self.room.broadcast_update(self)

    # ------------------------------------------------------------------ signal requests

    async def handle(self, request: rtc.SignalRequest) -> None:
        which = request.WhichOneof("message")
        if which not in ("ping", "ping_req"):
            logger.debug("%s -> %s", self, which)
        if which == "offer":
            await self._on_publisher_offer(request.offer)
        elif which == "answer":
            await self._on_subscriber_answer(request.answer)
        elif which == "trickle":
            await self._on_trickle(request.trickle)
        elif which == "add_track":
            await self._on_add_track(request.add_track)
        elif which == "subscription":
            await self._on_subscription(request.subscription)
        elif which == "mute":
            await self._on_mute(request.mute)
        elif which == "ping":
            await self.send(pong=int(time.time() * 1000))
        elif which == "ping_req":
            pong = rtc.Pong(
                last_ping_timestamp=request.ping_req.timestamp, timestamp=int(time.time() * 1000)
            )
            await self.send(pong_resp=pong)
        elif which == "update_metadata":
            u = request.update_metadata
            if self.info.permission.can_update_metadata:
                if u.metadata:
                    self.info.metadata = u.metadata
                if u.name:
                    self.info.name = u.name
                self.info.attributes.update(dict(u.attributes))
                self._changed()
                await self.room.broadcast_update(self, include_self=True)
        elif which == "leave":
            raise _Leave()
        # everything else (layers, track settings, sync_state, simulate, data tracks...) is
        # not needed by the clients the tests drive, and a real server would not fail on it

    async def _on_publisher_offer(self, offer: rtc.SessionDescription) -> None:
        before = self._sending_mids()
        await self.pub_pc.setRemoteDescription(RTCSessionDescription(offer.sdp, "offer"))
        await self._flush_trickles(rtc.PUBLISHER)
        answer = await self.pub_pc.createAnswer()
        await self.pub_pc.setLocalDescription(answer)
        local = self.pub_pc.localDescription
        await self.send(answer=rtc.SessionDescription(type="answer", sdp=local.sdp, id=offer.id))
        # a track whose m-line stopped sending was unpublished by the client
        gone = before - self._sending_mids()
        for track in [t for t in self.tracks.values() if t.info.mid in gone]:
            await self.unpublish(track)

    def _sending_mids(self) -> set[str]:
        # aiortc keeps the offer's direction from our side: "recvonly" = the client sends
        return {
            t.mid
            for t in self.pub_pc.getTransceivers()
            if t.mid is not None and t._offerDirection in ("recvonly", "sendrecv")
        }

    async def _on_subscriber_answer(self, answer: rtc.SessionDescription) -> None:
        if self.sub_pc.signalingState != "have-local-offer":
            logger.warning("%s: subscriber answer without an offer, ignored", self)
            return
        await self.sub_pc.setRemoteDescription(RTCSessionDescription(answer.sdp, "answer"))
        await self._flush_trickles(rtc.SUBSCRIBER)
        if self._answer is not None and not self._answer.done():
            self._answer.set_result(None)

    async def _on_trickle(self, trickle: rtc.TrickleRequest) -> None:
        init = json.loads(trickle.candidateInit or "{}")
        text = (init.get("candidate") or "").strip()
        if not text:
            return  # end of candidates: aioice keeps checking what it has
        if text.startswith("candidate:"):
            text = text[len("candidate:") :]
        candidate = candidate_from_sdp(text)
        if candidate.protocol.lower() != "udp":
            return  # aioice only speaks ICE over UDP; the client offers UDP candidates too
        candidate.sdpMid = init.get("sdpMid")
        candidate.sdpMLineIndex = init.get("sdpMLineIndex")
        pc = self.pub_pc if trickle.target == rtc.PUBLISHER else self.sub_pc
        if pc.remoteDescription is None:
            self._trickles[trickle.target].append(candidate)
        else:
            await pc.addIceCandidate(candidate)

    async def _flush_trickles(self, target: int) -> None:
        pc = self.pub_pc if target == rtc.PUBLISHER else self.sub_pc
        queued, self._trickles[target] = self._trickles[target], []
        for candidate in queued:
            await pc.addIceCandidate(candidate)

    async def _on_add_track(self, req: rtc.AddTrackRequest) -> None:
        if not self.can_publish:
            logger.warning("%s may not publish; add_track %s ignored", self, req.cid)
            return
        info = models.TrackInfo(
            sid=_new_id("TR_"),
            type=req.type,
            name=req.name,
            muted=req.muted,
            source=req.source,
            disable_dtx=req.disable_dtx,
            stereo=req.stereo,
            disable_red=req.disable_red,
            stream=req.stream,
        )
        self.pending_tracks[req.cid] = info
        await self.send(track_published=rtc.TrackPublishedResponse(cid=req.cid, track=info))

    def _on_track(self, track: MediaStreamTrack) -> None:
        # aiortc names a remote track after the msid in the offer: the client's track id (cid)
        info = self.pending_tracks.pop(track.id, None)
        if info is None and self.pending_tracks:
            info = self.pending_tracks.pop(next(iter(self.pending_tracks)))
        if info is None:
            logger.warning("%s: media track %s without add_track, ignored", self, track.id)
            return
        transceiver = next(
            (t for t in self.pub_pc.getTransceivers() if t.receiver.track is track), None
        )
        info.mid = transceiver.mid if transceiver is not None else ""
        info.mime_type = "audio/opus" if track.kind == "audio" else "video/vp8"
        published = PublishedTrack(info=info, publisher=self, source=track)
        published.start()
        self.tracks[info.sid] = published
        self.info.tracks.append(info)
        self.info.is_publisher = True
        self._changed()
        self.sfu._spawn(self.room.on_track_published(published))

    async def _on_subscription(self, update: rtc.UpdateSubscription) -> None:
        sids = list(update.track_sids)
        for pt in update.participant_tracks:
            sids.extend(pt.track_sids)
        for sid in sids:
            if update.subscribe:
                self.wanted.add(sid)
                track = self.room.find_track(sid)
                if track is not None and track.publisher is not self:
                    await self.subscribe(track)
            else:
                self.wanted.discard(sid)
                await self.unsubscribe(sid)

    async def _on_mute(self, req: rtc.MuteTrackRequest) -> None:
        for info in self.info.tracks:
            if info.sid == req.sid:
                info.muted = req.muted
        if req.sid in self.tracks:
            self.tracks[req.sid].info.muted = req.muted
            self._changed()
            await self.room.broadcast_update(self)

    # ------------------------------------------------------------------ media

    async def subscribe(self, track: PublishedTrack) -> None:
        if not self.can_subscribe or track.info.sid in self.subscriptions or self.closed:
            return
        if track.source.kind != "audio":
            return  # video is not relayed by the stand-in
        proxy = track.relay.subscribe(track.source)
        # The SDK reads "<participant sid>|<track sid>" from the msid's stream id; aiortc has
        # no public way to set the msid, hence the private attributes.
        proxy._id = track.info.sid
        transceiver = self.sub_pc.addTransceiver(proxy, direction="sendonly")
        transceiver.sender._stream_id = f"{track.publisher.sid}|{track.info.sid}"
        self.subscriptions[track.info.sid] = Subscription(track, transceiver.sender, proxy)
        self.negotiate_subscriber()
        await track.publisher.send(track_subscribed=rtc.TrackSubscribed(track_sid=track.info.sid))

    async def unsubscribe(self, track_sid: str) -> None:
        sub = self.subscriptions.pop(track_sid, None)
        if sub is None:
            return
        sub.sender.replaceTrack(None)
        sub.proxy.stop()
        for transceiver in self.sub_pc.getTransceivers():
            if transceiver.sender is sub.sender:
                transceiver.direction = "inactive"
        if not self.closed:
            self.negotiate_subscriber()

    async def unpublish(self, track: PublishedTrack) -> None:
        self.tracks.pop(track.info.sid, None)
        track.stop()
        kept = [t for t in self.info.tracks if t.sid != track.info.sid]
        del self.info.tracks[:]
        self.info.tracks.extend(kept)
        self._changed()
        await self.room.on_track_unpublished(track)

    def negotiate_subscriber(self) -> None:
        """Offer the subscriber connection again (one negotiation at a time, as on the server)."""
        self._renegotiate = True
        if self._negotiating is None or self._negotiating.done():
            self._negotiating = self.sfu._spawn(self._negotiate())

    async def _negotiate(self) -> None:
        while self._renegotiate and not self.closed:
            self._renegotiate = False
            offer = await self.sub_pc.createOffer()
            await self.sub_pc.setLocalDescription(offer)
            self._offer_id += 1
            self._answer = asyncio.get_running_loop().create_future()
            sdp = self.sub_pc.localDescription.sdp
            await self.send(offer=rtc.SessionDescription(type="offer", sdp=sdp, id=self._offer_id))
            try:
                await asyncio.wait_for(self._answer, _ANSWER_TIMEOUT_S)
            except TimeoutError:
                logger.warning("%s: no subscriber answer within %ss", self, _ANSWER_TIMEOUT_S)
                return

    def _on_connection_state(self) -> None:
        connected = "connected" in (self.pub_pc.connectionState, self.sub_pc.connectionState)
        if connected and self.info.state != models.ParticipantInfo.ACTIVE and not self.closed:
            self.info.state = models.ParticipantInfo.ACTIVE
            self._changed()
            self.sfu._spawn(self.room.broadcast_update(self, include_self=True))

    # ------------------------------------------------------------------ data

    def _on_datachannel(self, channel: RTCDataChannel) -> None:
        kind = _KIND_BY_LABEL.get(channel.label)
        if kind is None:
            return  # e.g. the data-track channel: not relayed by the stand-in

        @channel.on("message")
        def on_message(message: bytes | str) -> None:
            if isinstance(message, bytes):
                self.room.on_data(self, kind, message)

    def send_data(self, kind: int, data: bytes) -> None:
        label = _LABEL_BY_KIND[kind]
        channel = self.sub_channels.get(label)
        if channel is None:
            return
        if channel.readyState == "open":
            channel.send(data)
        else:
            self._pending_data[label].append(data)

    def _flush_data(self, label: str) -> None:
        queued, self._pending_data[label] = self._pending_data[label], []
        for data in queued:
            self.sub_channels[label].send(data)

    # ------------------------------------------------------------------ leaving

    async def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        if self._negotiating is not None:
            self._negotiating.cancel()
        for sid in list(self.subscriptions):
            await self.unsubscribe(sid)
        for track in list(self.tracks.values()):
            track.stop()
        await self.pub_pc.close()
        await self.sub_pc.close()
        self.info.state = models.ParticipantInfo.DISCONNECTED
        self._changed()


class _Leave(Exception):
    """The client sent `leave`."""


class SfuRoom:
    def __init__(self, sfu: Sfu, info: models.Room) -> None:
        self.sfu = sfu
        self.info = info
        self.peers: dict[str, Peer] = {}  # by identity
        self.data_log: list[models.DataPacket] = []  # every forwarded packet (for tests)

    @property
    def name(self) -> str:
        return self.info.name

    def visible_peers(self) -> list[Peer]:
        return [p for p in self.peers.values() if not p.hidden and not p.closed]

    def find_track(self, sid: str) -> PublishedTrack | None:
        for peer in self.peers.values():
            if sid in peer.tracks:
                return peer.tracks[sid]
        return None

    async def broadcast_update(self, peer: Peer, *, include_self: bool = False) -> None:
        if peer.hidden:
            return
        update = rtc.ParticipantUpdate(participants=[peer.info])
        for other in list(self.peers.values()):
            if other is not peer or include_self:
                await other.send(update=update)

    async def on_track_published(self, track: PublishedTrack) -> None:
        publisher = track.publisher
        await self.broadcast_update(publisher)
        for other in list(self.peers.values()):
            if other is publisher or other.closed:
                continue
            if other.auto_subscribe or track.info.sid in other.wanted:
                await other.subscribe(track)
        await self.sfu.standin._notify()

    async def on_track_unpublished(self, track: PublishedTrack) -> None:
        for other in list(self.peers.values()):
            if other is not track.publisher:
                await other.unsubscribe(track.info.sid)
        await self.broadcast_update(track.publisher)
        await track.publisher.send(
            track_unpublished=rtc.TrackUnpublishedResponse(track_sid=track.info.sid)
        )

    def on_data(self, sender: Peer, kind: int, raw: bytes) -> None:
        if not sender.can_publish_data:
            return
        packet = models.DataPacket.FromString(raw)
        which = packet.WhichOneof("value")
        if which == "transcription" and sender.info.kind != models.ParticipantInfo.AGENT:
            return  # only agents may publish (legacy) transcriptions
        # the server's word on who sent it, not the client's
        packet.kind = kind
        packet.participant_sid = sender.sid
        packet.participant_identity = "" if sender.hidden else sender.identity
        if which == "user":
            packet.user.participant_sid = "" if sender.hidden else sender.sid
            packet.user.participant_identity = packet.participant_identity
            if packet.destination_identities:
                del packet.user.destination_identities[:]
                packet.user.destination_identities.extend(packet.destination_identities)
            else:
                packet.destination_identities.extend(packet.user.destination_identities)
        sender.data_received += 1
        self.data_log.append(packet)
        destinations = set(packet.destination_identities)
        data = packet.SerializeToString()
        for peer in list(self.peers.values()):
            if peer is sender or peer.closed:
                continue
            if destinations and peer.identity not in destinations:
                continue
            peer.send_data(kind, data)

    async def remove(self, peer: Peer) -> None:
        if self.peers.get(peer.identity) is peer:
            del self.peers[peer.identity]
        published = list(peer.tracks.values())
        await peer.close()
        for track in published:
            for other in list(self.peers.values()):
                await other.unsubscribe(track.info.sid)
        if not peer.hidden:
            update = rtc.ParticipantUpdate(participants=[peer.info])
            for other in list(self.peers.values()):
                await other.send(update=update)
        self.info.num_participants = len(self.visible_peers())


class Sfu:
    """The room side of `LiveKitStandIn`: `/rtc` signalling, rooms, and the media relay."""

    def __init__(self, standin: LiveKitStandIn) -> None:
        self.standin = standin
        self.rooms: dict[str, SfuRoom] = {}
        self.refused: list[str] = []  # reasons for refused joins (for tests)
        self._tasks: set[asyncio.Task[Any]] = set()

    def _spawn(self, coro: Any) -> asyncio.Task[Any]:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._done)
        return task

    def _done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            logger.error("stand-in SFU task failed", exc_info=task.exception())

    def room(self, name: str) -> SfuRoom:
        info = self.standin._get_or_create_room(name, dispatch=True)
        if name not in self.rooms or self.rooms[name].info is not info:
            self.rooms[name] = SfuRoom(self, info)
        return self.rooms[name]

    def peers(self, room: str) -> list[Peer]:
        r = self.rooms.get(room)
        return list(r.peers.values()) if r is not None else []

    # ------------------------------------------------------------------ HTTP

    def _authorise(self, request: web.Request) -> Any:
        from .livekit_server import _AuthError

        claims = self.standin._claims(request)
        if claims is None:
            raise _AuthError("no permissions to access the room")
        video = claims.video
        if not video.room_join:
            raise _AuthError("no permissions to access the room")
        if not claims.identity:
            raise _AuthError("identity cannot be empty")
        room = video.room or request.query.get("room", "")
        if not room:
            raise _AuthError("room cannot be empty")
        return claims

    async def handle_validate(self, request: web.Request) -> web.Response:
        from .livekit_server import _AuthError

        try:
            self._authorise(request)
        except _AuthError as e:
            return web.Response(status=401, text=str(e))
        return web.Response(text="success")

    async def handle_v1(self, request: web.Request) -> web.Response:
        # single-peer-connection signalling is not implemented: a 404 makes the SDK use /rtc
        self.standin.rtc_requests.append(request.path)
        return web.Response(status=404, text="404 page not found")

    async def handle_rtc(self, request: web.Request) -> web.StreamResponse:
        from .livekit_server import _AuthError

        self.standin.rtc_requests.append(request.path)
        ws = web.WebSocketResponse(max_msg_size=0)
        if not ws.can_prepare(request).ok:
            return web.Response(status=400, text="websocket upgrade required")
        try:
            claims = self._authorise(request)
        except _AuthError as e:
            self.refused.append(str(e))
            await self.standin._record_auth_failure(request, str(e))
            return web.Response(status=401, text=str(e))
        if request.query.get("reconnect") in ("1", "true"):
            # no resume here: refuse, and the SDK falls back to a full rejoin
            return web.Response(status=404, text="no session to resume")

        await ws.prepare(request)
        room = self.room(claims.video.room or request.query.get("room", ""))
        previous = room.peers.get(claims.identity)
        if previous is not None:  # same identity joins again: the old one is told to leave
            await previous.send(
                leave=rtc.LeaveRequest(
                    reason=models.DUPLICATE_IDENTITY, action=rtc.LeaveRequest.DISCONNECT
                )
            )
            await room.remove(previous)
            await previous.ws.close()
        peer = Peer(self, room, claims, ws, request.query)
        room.peers[peer.identity] = peer
        try:
            await peer.join()
            await self.standin._notify()
            async for frame in ws:
                if frame.type != WSMsgType.BINARY:
                    continue
                try:
                    await peer.handle(rtc.SignalRequest.FromString(frame.data))
                except _Leave:
                    break
                except Exception:
                    logger.exception("%s: signal request failed", peer)
        finally:
            await room.remove(peer)
            if not ws.closed:
                await ws.close()
            await self.standin._notify()
        return ws

    async def close_room(self, name: str, reason: int = models.ROOM_DELETED) -> None:
        """Tell everyone in the room to leave, and close their connections."""
        room = self.rooms.pop(name, None)
        if room is None:
            return
        for peer in list(room.peers.values()):
            await peer.send(
                leave=rtc.LeaveRequest(reason=reason, action=rtc.LeaveRequest.DISCONNECT)
            )
            await room.remove(peer)
            await peer.ws.close()

    async def aclose(self) -> None:
        for name in list(self.rooms):
            await self.close_room(name, models.SERVER_SHUTDOWN)
        for task in list(self._tasks):
            task.cancel()
