"""One participant: what it may do, its two peer connections, what it publishes and hears.

LiveKit's "v0" signalling uses two peer connections per participant, as the Rust SDK in the
`livekit` wheel and livekit-client in a browser expect: the *publisher* connection, offered
by the client, carries what it sends (audio, and data packets on its `_reliable`/`_lossy`
channels); the *subscriber* connection, offered by the server, carries what it receives
(one send-only audio m-line per subscribed track, and the server's two data channels).
The msid of each subscribed m-line is ``<publisher sid>|<track sid>``, which is how the SDK
tells whose track it is.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Callable, Coroutine, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from aiohttp import web
from aiortc import (
    MediaStreamTrack,
    RTCConfiguration,
    RTCDataChannel,
    RTCPeerConnection,
    RTCRtpSender,
    RTCSessionDescription,
)
from aiortc.rtcconfiguration import RTCBundlePolicy
from aiortc.rtcicetransport import RTCIceCandidate
from aiortc.sdp import candidate_from_sdp
from livekit.protocol import models, rtc

from .auth import Claims, new_id
from .data import KIND_BY_LABEL, DataChannels
from .media import PublishedTrack, SubscriberTrack

if TYPE_CHECKING:
    from .rooms import Room

__all__ = ["Participant"]

logger = logging.getLogger("stt_agent.devserver")

ANSWER_TIMEOUT_S = 15.0
_KINDS = {
    "standard": models.ParticipantInfo.STANDARD,
    "agent": models.ParticipantInfo.AGENT,
    "ingress": models.ParticipantInfo.INGRESS,
    "egress": models.ParticipantInfo.EGRESS,
    "sip": models.ParticipantInfo.SIP,
}
Spawn = Callable[[Coroutine[Any, Any, None]], "asyncio.Task[None]"]


@dataclass
class Subscription:
    track: PublishedTrack
    sender: RTCRtpSender
    proxy: SubscriberTrack


class Participant:
    """A participant in a room, joined through the `/rtc` websocket `ws`."""

    def __init__(
        self,
        room: Room,
        claims: Claims,
        ws: web.WebSocketResponse,
        query: Mapping[str, str],
        spawn: Spawn,
    ) -> None:
        self.room, self.ws, self._spawn = room, ws, spawn
        video = claims.video
        assert video is not None  # checked by auth.room_join_claims
        self.can_publish = bool(video.can_publish)
        self.can_subscribe = bool(video.can_subscribe)
        self.can_publish_data = bool(video.can_publish_data)
        self.auto_subscribe = query.get("auto_subscribe", "1") not in ("0", "false")
        now = time.time()
        self.info = models.ParticipantInfo(
            sid=new_id("PA_"),
            identity=claims.identity,
            name=claims.name or "",
            metadata=claims.metadata or "",
            attributes=dict(claims.attributes or {}),
            state=models.ParticipantInfo.JOINED,
            joined_at=int(now),
            joined_at_ms=int(now * 1000),
            version=1,
            kind=_KINDS.get((claims.kind or "standard").lower(), models.ParticipantInfo.STANDARD),
            permission=models.ParticipantPermission(
                can_subscribe=self.can_subscribe,
                can_publish=self.can_publish,
                can_publish_data=self.can_publish_data,
                hidden=bool(video.hidden),
                agent=bool(video.agent),
                can_update_metadata=bool(video.can_update_own_metadata),
            ),
        )
        # no ICE servers: host candidates only, which is all one machine needs (no STUN, no TURN)
        config = RTCConfiguration(iceServers=[], bundlePolicy=RTCBundlePolicy.MAX_BUNDLE)
        self.pub_pc = RTCPeerConnection(config)
        self.sub_pc = RTCPeerConnection(config)
        self.data = DataChannels(self.identity)
        self.pending_tracks: dict[str, models.TrackInfo] = {}  # by the client's cid
        self.tracks: dict[str, PublishedTrack] = {}  # published, by track sid
        self.subscriptions: dict[str, Subscription] = {}  # by track sid
        self.wanted: set[str] = set()  # track sids asked for, maybe not published yet
        self.data_received = 0
        self.closed = False
        self.timed_out = False  # removed for want of pings, not by leaving
        self.last_seen = time.monotonic()  # any signal message; for the ping timeout
        self._send_lock = asyncio.Lock()
        self._trickles: dict[int, list[RTCIceCandidate]] = {rtc.PUBLISHER: [], rtc.SUBSCRIBER: []}
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

    @property
    def hidden(self) -> bool:
        return self.info.permission.hidden

    @property
    def is_agent(self) -> bool:
        return self.info.kind == models.ParticipantInfo.AGENT

    def __repr__(self) -> str:
        return f"<Participant {self.identity} {self.sid} in {self.room.name}>"

    # ------------------------------------------------------------------ signalling out

    async def send(self, **message: Any) -> None:
        """One SignalResponse to the client; nothing once it is gone."""
        if self.closed or self.ws.closed:
            return
        data = rtc.SignalResponse(**message).SerializeToString()
        async with self._send_lock:
            with contextlib.suppress(ConnectionError, RuntimeError):
                await self.ws.send_bytes(data)

    def changed(self) -> None:
        self.info.version += 1

    def start_subscriber(self) -> None:
        """Subscriber primary: the server offers the subscriber connection at once."""
        if self.can_subscribe:
            self.data.open_on(self.sub_pc)
            self.negotiate_subscriber()

    # ------------------------------------------------------------------ SDP and ICE

    async def on_publisher_offer(self, offer: rtc.SessionDescription) -> None:
        before = self._sending_mids()
        await self.pub_pc.setRemoteDescription(RTCSessionDescription(offer.sdp, "offer"))
        await self._flush_trickles(rtc.PUBLISHER)
        await self.pub_pc.setLocalDescription(await self.pub_pc.createAnswer())
        sdp = self.pub_pc.localDescription.sdp
        await self.send(answer=rtc.SessionDescription(type="answer", sdp=sdp, id=offer.id))
        # a track whose m-line stopped sending was unpublished by the client
        gone = before - self._sending_mids()
        for track in [t for t in self.tracks.values() if t.info.mid in gone]:
            await self.unpublish(track)

    def _sending_mids(self) -> set[str]:
        # aiortc keeps the offer's direction from our side: "recvonly" = the client sends.
        # It has no public accessor for it, hence getattr.
        return {
            t.mid
            for t in self.pub_pc.getTransceivers()
            if t.mid is not None and getattr(t, "_offerDirection", None) in ("recvonly", "sendrecv")
        }

    async def on_subscriber_answer(self, answer: rtc.SessionDescription) -> None:
        if self.sub_pc.signalingState != "have-local-offer":
            logger.debug("%s: subscriber answer without an offer, ignored", self)
            return
        await self.sub_pc.setRemoteDescription(RTCSessionDescription(answer.sdp, "answer"))
        await self._flush_trickles(rtc.SUBSCRIBER)
        if self._answer is not None and not self._answer.done():
            self._answer.set_result(None)

    async def on_trickle(self, trickle: rtc.TrickleRequest) -> None:
        init = json.loads(trickle.candidateInit or "{}")
        text = str(init.get("candidate") or "").strip()
        if not text:
            return  # end of candidates: aioice keeps checking what it has
        candidate = candidate_from_sdp(text.removeprefix("candidate:"))
        if candidate.protocol.lower() != "udp":
            return  # aioice only speaks ICE over UDP; the clients offer UDP candidates too
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

    def negotiate_subscriber(self) -> None:
        """Offer the subscriber connection again (one negotiation at a time, as on the server)."""
        self._renegotiate = True
        if self._negotiating is None or self._negotiating.done():
            self._negotiating = self._spawn(self._negotiate())

    async def _negotiate(self) -> None:
        while self._renegotiate and not self.closed:
            self._renegotiate = False
            await self.sub_pc.setLocalDescription(await self.sub_pc.createOffer())
            self._offer_id += 1
            self._answer = asyncio.get_running_loop().create_future()
            sdp = self.sub_pc.localDescription.sdp
            await self.send(offer=rtc.SessionDescription(type="offer", sdp=sdp, id=self._offer_id))
            try:
                await asyncio.wait_for(self._answer, ANSWER_TIMEOUT_S)
            except TimeoutError:
                logger.warning(
                    "%s did not answer the server's offer within %gs", self, ANSWER_TIMEOUT_S
                )
                return

    def _on_connection_state(self) -> None:
        connected = "connected" in (self.pub_pc.connectionState, self.sub_pc.connectionState)
        if connected and self.info.state != models.ParticipantInfo.ACTIVE and not self.closed:
            self.info.state = models.ParticipantInfo.ACTIVE
            self.changed()
            self._spawn(self.room.broadcast_update(self, include_self=True))

    # ------------------------------------------------------------------ publishing

    async def on_add_track(self, req: rtc.AddTrackRequest) -> None:
        if not self.can_publish:
            logger.info("%s may not publish: track %r refused", self, req.name)
            return
        info = models.TrackInfo(
            sid=new_id("TR_"),
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
            logger.debug("%s: media track %s without add_track, ignored", self, track.id)
            return
        transceiver = next(
            (t for t in self.pub_pc.getTransceivers() if t.receiver.track is track), None
        )
        info.mid = transceiver.mid or "" if transceiver is not None else ""
        info.mime_type = "audio/opus" if track.kind == "audio" else "video/vp8"
        published = PublishedTrack(info, self, track)
        published.start()
        self.tracks[info.sid] = published
        self.info.tracks.append(info)
        self.info.is_publisher = True
        self.changed()
        source = models.TrackSource.Name(info.source).removeprefix("SOURCE_") or "unknown"
        if published.is_audio:
            logger.info(
                "%s published audio (%s) in room %s", self.identity, source.lower(), self.room.name
            )
        else:
            logger.info(
                "%s published video in room %s: not relayed, the kit's server forwards audio only",
                self.identity,
                self.room.name,
            )
        self._spawn(self.room.on_track_published(published))

    async def unpublish(self, track: PublishedTrack) -> None:
        self.tracks.pop(track.info.sid, None)
        track.stop()
        kept = [t for t in self.info.tracks if t.sid != track.info.sid]
        del self.info.tracks[:]
        self.info.tracks.extend(kept)
        self.changed()
        await self.room.on_track_unpublished(track)

    async def on_mute(self, req: rtc.MuteTrackRequest) -> None:
        for info in self.info.tracks:
            if info.sid == req.sid:
                info.muted = req.muted
        if req.sid in self.tracks:
            self.tracks[req.sid].info.muted = req.muted
            self.changed()
            await self.room.broadcast_update(self)

    # ------------------------------------------------------------------ subscribing

    async def subscribe(self, track: PublishedTrack) -> None:
        if not self.can_subscribe or track.info.sid in self.subscriptions or self.closed:
            return
        if not track.is_audio:
            return  # video is not relayed
        proxy = track.subscribe()
        transceiver = self.sub_pc.addTransceiver(proxy, direction="sendonly")
        # The SDK reads "<participant sid>|<track sid>" from the msid's stream id; aiortc has
        # no public way to set it.
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

    async def on_subscription(self, update: rtc.UpdateSubscription) -> None:
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

    # ------------------------------------------------------------------ data

    def _on_datachannel(self, channel: RTCDataChannel) -> None:
        kind = KIND_BY_LABEL.get(channel.label)
        if kind is None:
            return  # e.g. the data-track channel: not relayed

        @channel.on("message")
        def on_message(message: bytes | str) -> None:
            if isinstance(message, bytes) and self.can_publish_data and not self.closed:
                self.data_received += 1
                self.room.on_data(self, kind, message)

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
        self.changed()
