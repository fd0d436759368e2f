"""Forwarding audio: one published track fanned out to every subscriber, with bounded queues.

A real LiveKit SFU forwards RTP packets untouched. This one is built on aiortc, which hands a
received track over as decoded frames and encodes what it sends: audio is decoded once per
published track and Opus-encoded again once per subscriber. That costs CPU and a little
quality, and is why the kit's server is for one machine and a handful of voices.

Memory cannot grow: aiortc queues a received track's frames without bound until somebody
reads them, so every published track is read all the time (`PublishedTrack`), and each
subscriber gets its own queue of at most `SUBSCRIBER_QUEUE_FRAMES` frames. A subscriber whose
encoder falls behind loses its oldest frames (a short gap in what it hears), never the
others' audio and never the server's memory; a subscriber's queue only fills once its sender
reads, so no audio from before its connection was up arrives late in one burst.

Video is not relayed: its frames are read (so they do not pile up) and dropped.
"""

from __future__ import annotations

import asyncio
import collections
import logging
from typing import TYPE_CHECKING

from aiortc import MediaStreamTrack
from aiortc.mediastreams import MediaStreamError
from av.audio.frame import AudioFrame
from av.frame import Frame
from livekit.protocol import models

if TYPE_CHECKING:
    from .participant import Participant

__all__ = ["SUBSCRIBER_QUEUE_FRAMES", "PublishedTrack", "SubscriberTrack"]

logger = logging.getLogger("stt_agent.devserver")

# 50 frames of 20 ms: one second of audio may wait for a subscriber's encoder, no more
SUBSCRIBER_QUEUE_FRAMES = 50


class SubscriberTrack(MediaStreamTrack):
    """What one subscriber's sender reads: the published frames, through a bounded queue."""

    def __init__(self, source: PublishedTrack, track_id: str, maxlen: int) -> None:
        super().__init__()
        self.kind = "audio"
        self._id = track_id  # the SDK expects the subscribed track's id to be the track sid
        self._source: PublishedTrack | None = source
        self._frames: collections.deque[Frame | None] = collections.deque(maxlen=maxlen)
        self._ready = asyncio.Event()
        self._reading = False
        self.dropped = 0  # frames lost because this subscriber fell behind

    def push(self, frame: Frame | None) -> None:
        if not self._reading and frame is not None:
            # Until its connection is up, the sender does not read. Keeping that audio would
            # send it later in one burst, which the receiver's jitter buffer squeezes (heard
            # as garbled speech): an SFU forwards what arrives now, or nothing.
            return
        if len(self._frames) == self._frames.maxlen:
            self.dropped += 1  # the deque drops the oldest frame itself
        self._frames.append(frame)
        self._ready.set()

    async def recv(self) -> Frame:
        self._reading = True
        while not self._frames:
            if self.readyState != "live":
                raise MediaStreamError
            self._ready.clear()
            await self._ready.wait()
        frame = self._frames.popleft()
        if frame is None:  # the published track ended
            self.stop()
            raise MediaStreamError
        return frame

    def stop(self) -> None:
        if self._source is not None:
            self._source.unsubscribe(self)
            self._source = None
        self._ready.set()  # wake a waiting recv() so it sees the end
        super().stop()


class PublishedTrack:
    """A track a participant publishes, once its media reached the server."""

    def __init__(
        self, info: models.TrackInfo, publisher: Participant, source: MediaStreamTrack
    ) -> None:
        self.info = info
        self.publisher = publisher
        self.source = source
        self.frames_received = 0  # decoded frames that reached the server
        self.samples_received = 0
        self._subscribers: set[SubscriberTrack] = set()
        self._reader: asyncio.Task[None] | None = None

    @property
    def is_audio(self) -> bool:
        return self.source.kind == "audio"

    def start(self) -> None:
        self._reader = asyncio.ensure_future(self._read())

    def subscribe(self, maxlen: int = SUBSCRIBER_QUEUE_FRAMES) -> SubscriberTrack:
        track = SubscriberTrack(self, self.info.sid, maxlen)
        self._subscribers.add(track)
        return track

    def unsubscribe(self, track: SubscriberTrack) -> None:
        self._subscribers.discard(track)

    async def _read(self) -> None:
        while True:
            try:
                frame = await self.source.recv()
            except MediaStreamError:
                break
            self.frames_received += 1
            if not isinstance(frame, AudioFrame):
                continue  # video: read so it does not pile up in aiortc, not relayed
            self.samples_received += frame.samples
            for subscriber in list(self._subscribers):
                subscriber.push(frame)
        for subscriber in list(self._subscribers):
            subscriber.push(None)

    def stop(self) -> None:
        if self._reader is not None:
            self._reader.cancel()
        for subscriber in list(self._subscribers):
            subscriber.push(None)
        dropped = sum(s.dropped for s in self._subscribers)
        if dropped:
            logger.info(
                "%s's track %s: %d audio frames dropped for slow subscribers",
                self.publisher.identity,
                self.info.sid,
                dropped,
            )
