"""VirtualSpeaker without a LiveKit server: conversion, pacing, capture into rtc.AudioSource.

Joining a room and publishing are in test_room_media.py (against the stand-in's media); here
we only check that `join` fails fast and clearly against a server that refuses rooms.
"""

from __future__ import annotations

import time

import av
import numpy as np
import pytest
from livekit import api, rtc

from stt_agent.room.speaker import SpeakerError, VirtualSpeaker
from tests.standins.livekit_server import LiveKitStandIn


def _tone(seconds: float, rate: int) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    # a chirp plus a low tone: a correlation that a wrong rate or channel mix would break
    return (
        0.3 * np.sin(2 * np.pi * (200 + 300 * t) * t) + 0.2 * np.sin(2 * np.pi * 90 * t)
    ).astype(np.float32)


def _reference(seconds: float) -> np.ndarray:
    return _tone(seconds, 16_000)


async def _collect(speaker: VirtualSpeaker):
    return [item async for item in speaker.schedule()]


def _samples(items) -> np.ndarray:
    return (
        np.concatenate([np.frombuffer(bytes(i.frame.data), dtype=np.int16) for i in items]).astype(
            np.float32
        )
        / 32768.0
    )


def _correlation(got: np.ndarray, want: np.ndarray) -> float:
    n = min(got.size, want.size)
    return float(np.corrcoef(got[:n], want[:n])[0, 1])


async def test_stereo_44k_array_becomes_16k_mono_frames():
    mono = _tone(2.0, 44_100)
    stereo = np.stack([mono, mono], axis=1)  # (n, 2)
    items = await _collect(VirtualSpeaker(stereo, sample_rate=44_100))
    assert all(i.frame.sample_rate == 16_000 and i.frame.num_channels == 1 for i in items)
    assert all(i.frame.samples_per_channel == 320 for i in items)
    assert [round(i.at, 6) for i in items[:3]] == [0.0, 0.02, 0.04]
    assert items[-1].at == pytest.approx((len(items) - 1) * 0.02)
    assert _correlation(_samples(items), _reference(2.0)) > 0.9


async def test_flac_file_becomes_16k_mono_frames(tmp_path):
    path = tmp_path / "speech.flac"
    rate = 44_100
    mono = _tone(2.0, rate)
    pcm = (np.stack([mono, mono]) * 32767).astype(np.int16)  # planar (channels, n)
    with av.open(str(path), "w") as out:
        stream = out.add_stream("flac", rate=rate, layout="stereo")
        for i in range(0, pcm.shape[1], 4096):
            frame = av.AudioFrame.from_ndarray(
                np.ascontiguousarray(pcm[:, i : i + 4096]), format="s16p", layout="stereo"
            )
            frame.sample_rate = rate
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    items = await _collect(VirtualSpeaker(path))
    assert all(i.frame.sample_rate == 16_000 and i.frame.num_channels == 1 for i in items)
    assert len(items) * 0.02 >= 2.0
    assert _correlation(_samples(items), _reference(2.0)) > 0.9


async def test_realtime_pacing_into_a_standalone_audio_source():
    speaker = VirtualSpeaker(_tone(2.0, 16_000))
    speaker.source.trailing_silence_s = 0.0  # exactly 2 s of audio
    source = rtc.AudioSource(16_000, 1)  # no room: rtc.AudioSource works standalone
    try:
        started = time.perf_counter()
        stats = await speaker.play_into(source)
        wall = time.perf_counter() - started
    finally:
        await source.aclose()
    assert stats.frames == 100 and stats.audio_s == pytest.approx(2.0)
    # real time, half a second ahead (the lead kept queued): never faster than that (a busy
    # machine can only make it slower, so no upper bound is asserted here)
    assert speaker.lead_s == 0.5
    assert wall >= 1.4, wall
    assert stats.wall_s <= wall


async def test_without_pacing_the_rtc_queue_still_limits_the_burst():
    speaker = VirtualSpeaker(_tone(1.6, 16_000), realtime=False)
    speaker.source.trailing_silence_s = 0.0
    source = rtc.AudioSource(16_000, 1)  # queue_size_ms=1000: the first second goes at once
    try:
        stats = await speaker.play_into(source)
    finally:
        await source.aclose()
    assert stats.audio_s == pytest.approx(1.6)
    # the first second bursts into the queue, the rest waits for it to drain: at least 0.4 s
    assert stats.wall_s >= 0.4, stats.wall_s


async def test_play_before_join_is_an_error():
    with pytest.raises(SpeakerError, match="join"):
        await VirtualSpeaker(_tone(0.1, 16_000)).play()


async def test_join_refused_by_the_server_fails_fast_and_clearly():
    async with LiveKitStandIn(media=False) as lk:
        token = (
            api.AccessToken(lk.api_key, lk.api_secret)
            .with_identity("virtual-speaker")
            .with_grants(api.VideoGrants(room_join=True, room="r", can_publish=True))
            .to_jwt()
        )
        speaker = VirtualSpeaker(_tone(0.5, 16_000), connect_timeout=10)
        started = time.perf_counter()
        with pytest.raises(SpeakerError, match=r"could not join a room on ws://127\.0\.0\.1") as e:
            await speaker.join(lk.ws_url, token)
        assert time.perf_counter() - started < 5
        assert token not in str(e.value) and lk.api_secret not in str(e.value)
        assert lk.rtc_requests  # it did try the stand-in's /rtc
        assert speaker.room is None
        await speaker.aclose()
