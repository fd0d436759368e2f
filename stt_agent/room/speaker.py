"""A virtual participant that speaks a file or an array into a LiveKit room, as a microphone.

`VirtualSpeaker` lets a notebook test room mode without a person talking: it joins the room,
publishes a microphone track and plays the audio in real time, so the agent hears it the way
it would hear a browser microphone.

Pacing: `rtc.AudioSource.capture_frame` queues up to `queue_size_ms` (1 s by default) and only
then blocks, so feeding it as fast as possible would send the first second in a burst. The
speaker therefore paces itself, drift-free (`stt_agent.pacing.Pacer`), from the first frame's
time: frame `i` is captured no earlier than `start + i * 20 ms - lead_s`. The lead keeps half a
second queued: WebRTC takes 10 ms from that queue every 10 ms and sends *silence* when it is
empty, so a speaker paced exactly in real time cuts a gap into its words whenever the kernel's
loop is a little late (measured on a busy two-core machine: 77 of 600 frames more than 10 ms
late, the worst 227 ms). The source is read with `realtime=False` (the speaker does the pacing;
a live source such as the microphone widget is paced by nature).

What needs a LiveKit server (or the test suite's stand-in): `join`, `play` and `aclose` (room
signalling and WebRTC media). `schedule`, `frames` and `play_into` run without one, against a
standalone `rtc.AudioSource`.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass

from livekit import rtc

from ..audio import SAMPLE_RATE, as_source
from ..errors import RoomError
from ..pacing import Pacer
from ..scrub import scrub

__all__ = ["PlayStats", "ScheduledFrame", "SpeakerError", "VirtualSpeaker"]


class SpeakerError(RoomError):
    """The speaker could not join or publish; the message never holds the token."""


@dataclass(frozen=True)
class ScheduledFrame:
    """One 20 ms, 16 kHz mono frame and when it is due, in seconds after the first frame."""

    at: float
    frame: rtc.AudioFrame


@dataclass(frozen=True)
class PlayStats:
    frames: int
    audio_s: float
    wall_s: float


class VirtualSpeaker:
    """Plays `source` (a path, an array, or any `stt_agent.audio` source) as a participant.

    `sample_rate` is the rate of a NumPy array source. `realtime=False` sends as fast as the
    `rtc.AudioSource` queue accepts (about 1 s ahead, then real time); keep the default.
    `lead_s` is how far ahead of real time frames are queued (see the module's note on pacing).
    """

    def __init__(
        self,
        source: object,
        *,
        identity: str = "virtual-speaker",
        realtime: bool = True,
        sample_rate: int = SAMPLE_RATE,
        connect_timeout: float = 10.0,
        lead_s: float = 0.5,
    ) -> None:
        self.source = as_source(source, realtime=False, sample_rate=sample_rate)
        self.identity = identity
        self.realtime = realtime
        self.connect_timeout = connect_timeout
        self.lead_s = lead_s
        self.room: rtc.Room | None = None
        self.audio_source: rtc.AudioSource | None = None
        self.track: rtc.LocalAudioTrack | None = None
        self.stats: PlayStats | None = None

    def __repr__(self) -> str:
        joined = "joined" if self.room is not None else "not joined"
        return f"VirtualSpeaker({self.source!r}, identity={self.identity!r}, {joined})"

    # --- server-free parts -------------------------------------------------------------

    async def schedule(self) -> AsyncIterator[ScheduledFrame]:
        """Every frame that would be captured, with its due time; no waiting."""
        n = 0
        async for frame in self.source.frames():
            if frame.sample_rate != SAMPLE_RATE or frame.num_channels != 1:
                raise ValueError(
                    f"{self.source.name}: expected 16 kHz mono frames, got "
                    f"{frame.sample_rate} Hz x {frame.num_channels}"
                )
            yield ScheduledFrame(n / SAMPLE_RATE, frame)
            n += frame.samples_per_channel

    async def frames(self) -> AsyncIterator[rtc.AudioFrame]:
        """The scheduled frames, each released `lead_s` before its due time when `realtime`."""
        pacer = Pacer(realtime=self.realtime, lead_s=self.lead_s)
        async for item in self.schedule():
            await pacer.wait(item.at)
            yield item.frame

    async def play_into(self, audio_source: rtc.AudioSource) -> PlayStats:
        """Capture every frame into `audio_source` (works with or without a room)."""
        started = time.monotonic()
        count = samples = 0
        async for frame in self.frames():
            await audio_source.capture_frame(frame)
            count += 1
            samples += frame.samples_per_channel
        self.stats = PlayStats(count, samples / SAMPLE_RATE, time.monotonic() - started)
        return self.stats

    # --- room parts (need a LiveKit server) --------------------------------------------

    async def join(self, url: str, token: str) -> None:
        """Connect to the room the token names and publish a microphone track."""
        if self.room is not None:
            raise SpeakerError(f"{self.identity} has already joined a room")
        room = rtc.Room()
        try:
            async with asyncio.timeout(self.connect_timeout):
                await room.connect(url, token, rtc.RoomOptions(auto_subscribe=False))
        except TimeoutError:
            await room.disconnect()
            raise SpeakerError(
                f"{self.identity} could not join a room on {url}: "
                f"no answer within {self.connect_timeout:g} s"
            ) from None
        except Exception as e:
            await room.disconnect()
            reason = scrub(str(e)) or type(e).__name__
            raise SpeakerError(
                f"{self.identity} could not join a room on {url} ({type(e).__name__}: {reason}); "
                "joining needs a running LiveKit server and a valid, unexpired token"
            ) from None
        self.room = room
        self.audio_source = rtc.AudioSource(SAMPLE_RATE, 1)
        self.track = rtc.LocalAudioTrack.create_audio_track(self.identity, self.audio_source)
        options = rtc.TrackPublishOptions(source=rtc.TrackSource.SOURCE_MICROPHONE)
        await room.local_participant.publish_track(self.track, options)

    async def play(self) -> PlayStats:
        """Speak the whole source into the room, then wait until it has been played out."""
        if self.audio_source is None:
            raise SpeakerError("call join(url, token) before play()")
        stats = await self.play_into(self.audio_source)
        await self.audio_source.wait_for_playout()
        return stats

    async def aclose(self) -> None:
        """Unpublish, leave the room and free the audio source; safe to call twice."""
        room, self.room = self.room, None
        if room is not None:
            if self.track is not None and room.isconnected():
                # leaving the room unpublishes it anyway
                with contextlib.suppress(Exception):
                    await room.local_participant.unpublish_track(self.track.sid)
            await room.disconnect()
        if self.audio_source is not None:
            await self.audio_source.aclose()
            self.audio_source = None
        self.track = None
