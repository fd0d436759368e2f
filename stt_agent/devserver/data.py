"""Data packets and text streams: from one participant's data channel to the others'.

A client publishes `livekit.DataPacket` protobufs on the `_reliable` or `_lossy` data channel
of its publisher connection; the server stamps each packet with the sender's sid and identity
(the server's word, not the client's), filters it by its destination identities, and sends it
on the receivers' subscriber connection channel of the same kind. Text streams such as
`lk.transcription` are such packets too (a stream header, chunks, a trailer), so they need
nothing of their own here.

Bounded: a receiver whose channel is not open yet keeps at most `PENDING_PACKETS` packets, and
an open channel whose SCTP send buffer already holds `MAX_BUFFERED_BYTES` gets no more until
it drains; the packets that did not fit are dropped and counted, never queued without end.
"""

from __future__ import annotations

import collections
import logging
from collections.abc import Iterable
from typing import Protocol

from aiortc import RTCDataChannel, RTCPeerConnection
from livekit.protocol import models

__all__ = ["LOSSY", "RELIABLE", "DataChannels", "stamp"]

logger = logging.getLogger("stt_agent.devserver")

RELIABLE, LOSSY = "_reliable", "_lossy"
KIND_BY_LABEL: dict[str, int] = {
    RELIABLE: models.DataPacket.RELIABLE,
    LOSSY: models.DataPacket.LOSSY,
}
LABEL_BY_KIND = {v: k for k, v in KIND_BY_LABEL.items()}
PENDING_PACKETS = 256
MAX_BUFFERED_BYTES = 4 * 1024 * 1024


class Sender(Protocol):
    """What stamping needs to know about the sender."""

    @property
    def sid(self) -> str: ...
    @property
    def identity(self) -> str: ...
    @property
    def hidden(self) -> bool: ...
    @property
    def is_agent(self) -> bool: ...


def stamp(sender: Sender, kind: int, raw: bytes) -> models.DataPacket | None:
    """The packet as the receivers get it, or None when it is refused (undecodable, or a
    legacy transcription from a participant that is not an agent)."""
    try:
        packet = models.DataPacket.FromString(raw)
    except Exception:  # protobuf's DecodeError and friends: garbage from a client
        return None
    which = packet.WhichOneof("value")
    if which == "transcription" and not sender.is_agent:
        return None  # only agents may publish (legacy) transcriptions
    identity = "" if sender.hidden else sender.identity
    packet.kind = kind  # type: ignore[assignment]
    packet.participant_sid = sender.sid
    packet.participant_identity = identity
    if which == "user":
        packet.user.participant_sid = "" if sender.hidden else sender.sid
        packet.user.participant_identity = identity
        if packet.destination_identities:
            del packet.user.destination_identities[:]
            packet.user.destination_identities.extend(packet.destination_identities)
        else:
            packet.destination_identities.extend(packet.user.destination_identities)
    return packet


def receivers(packet: models.DataPacket, candidates: Iterable[str]) -> list[str]:
    """The identities among `candidates` the packet is for."""
    wanted = set(packet.destination_identities)
    return [c for c in candidates if not wanted or c in wanted]


class DataChannels:
    """The server's two data channels on one participant's subscriber connection."""

    def __init__(self, owner: str) -> None:
        self.owner = owner
        self._channels: dict[str, RTCDataChannel] = {}
        self._pending: dict[str, collections.deque[bytes]] = {
            label: collections.deque(maxlen=PENDING_PACKETS) for label in KIND_BY_LABEL
        }
        self.dropped = 0

    def open_on(self, pc: RTCPeerConnection) -> None:
        for label in (RELIABLE, LOSSY):
            if label == LOSSY:
                channel = pc.createDataChannel(label, ordered=False, maxRetransmits=0)
            else:
                channel = pc.createDataChannel(label, ordered=True)
            channel.on("open", lambda label=label: self._flush(label))
            self._channels[label] = channel

    def send(self, kind: int, data: bytes) -> None:
        label = LABEL_BY_KIND.get(kind, RELIABLE)
        channel = self._channels.get(label)
        if channel is None:
            return  # this participant may not subscribe
        if channel.readyState != "open":
            pending = self._pending[label]
            if len(pending) == pending.maxlen:
                self._drop()
            pending.append(data)
        elif channel.bufferedAmount > MAX_BUFFERED_BYTES:
            self._drop()
        else:
            channel.send(data)

    def _drop(self) -> None:
        if self.dropped == 0:
            logger.warning(
                "%s does not read its data channel: packets to it are dropped", self.owner
            )
        self.dropped += 1

    def _flush(self, label: str) -> None:
        queued = self._pending[label]
        while queued:
            self._channels[label].send(queued.popleft())
