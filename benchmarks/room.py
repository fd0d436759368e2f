"""Room mode over the kit's LiveKit server on loopback: end of speech -> caption final and
-> turn, 1 and 4 speakers.

`python -m benchmarks.room [--speakers 1 4] [--json]` starts the kit's LiveKit server
(`python -m stt_agent server --dev`, the SFU the real `livekit.rtc` client joins), registers
the kit's worker with `start_agent`, opens a room with `open_room` and has N `VirtualSpeaker`s
read different recordings at the same time. One session per speaker transcribes them (the
room mode's multi-user transcriber).

Room EOS -> turn = the kit's own `Utterance.latency_s` (the end of speech reaching the agent's
STT -> the turn delivered to the feed) + the one-way transport delay (the speaker's Rust audio
queue, Opus, the SFU, the receiver's jitter buffer); room EOS -> caption final is the same with
`CaptionFinal.latency_s` (-> each caption final delivered). The transport delay is measured at
a listener in the same room, on the same path: its received audio is matched to the recording
(loudness contour, 20 ms windows) and the wall clock of the match is compared with when the
speaker started playing. EOS here is where the local engine's VAD put it, while the local-mode
benchmark uses the signal's own EOS (`clips.py`), so compare the two with that in mind.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import socket
import sys
import time
import warnings
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from livekit import rtc

import stt_agent
from stt_agent.config import Secret, Settings
from stt_agent.engines import LocalSTT
from stt_agent.feed import CaptionFinal
from stt_agent.room.rooms import mint_user_token, open_room
from stt_agent.room.speaker import VirtualSpeaker

from .clips import FRAME_SAMPLES, SAMPLE_RATE
from .scoring import corpus_wer, references
from .speech import speech_dir

REPO = Path(__file__).resolve().parents[1]
# Different voices and texts, longest first so four at once overlap for most of the run.
CLIPS = (
    "librispeech_dev_1272-141231-0002.wav",
    "librispeech_dev_2412-153948-0000.wav",
    "jfk_inaugural_1961.wav",
    "ljspeech_LJ050-0131.wav",
)
AGENT_NAME = "room-bench"
_TIMEOUT_S = 120.0
_ALIGN_S = 3.0


@dataclass
class _Heard:
    """A listener's view of one speaker: 16 kHz samples and the wall clock of each frame."""

    samples: list[np.ndarray] = field(default_factory=list)
    walls: list[float] = field(default_factory=list)  # arrival of each frame's first sample


def _envelope(pcm: np.ndarray) -> np.ndarray:
    n = pcm.size // FRAME_SAMPLES
    blocks = pcm[: n * FRAME_SAMPLES].astype(np.float64).reshape(n, FRAME_SAMPLES)
    return np.sqrt((blocks**2).mean(axis=1))


def _transport_delay(clip_pcm: np.ndarray, heard: _Heard, played_at: float) -> float | None:
    """Seconds from the speaker playing sample 0 to a listener hearing it."""
    if not heard.samples:
        return None
    pcm = np.concatenate(heard.samples)
    # only the first seconds: a jitter buffer under load stretches and squeezes time later on,
    # which keeps the words but breaks a rigid alignment of the whole clip
    sent, got = _envelope(clip_pcm)[: int(_ALIGN_S / 0.02)], _envelope(pcm)
    if got.size <= sent.size:
        return None
    scores = [
        float(np.corrcoef(sent, got[lag : lag + sent.size])[0, 1])
        if got[lag : lag + sent.size].std() > 0
        else -1.0
        for lag in range(got.size - sent.size + 1)
    ]
    lag = int(np.argmax(scores))
    if scores[lag] < 0.6:
        return None  # not the recording: do not report a delay at all
    # wall clock of the heard sample lag * 20 ms, from the frame it arrived in
    starts = np.cumsum([0] + [s.size for s in heard.samples[:-1]])
    sample = lag * FRAME_SAMPLES
    i = int(np.searchsorted(starts, sample, side="right") - 1)
    at = heard.walls[i] + (sample - starts[i]) / SAMPLE_RATE
    return at - played_at


async def _pcm(path: Path) -> np.ndarray:
    source = stt_agent.audio.as_source(path, realtime=False)
    source.trailing_silence_s = 0.0
    return np.concatenate([np.frombuffer(bytes(f.data), np.int16) async for f in source.frames()])


@contextlib.asynccontextmanager
async def _kit_server() -> AsyncIterator[str]:
    """The kit's LiveKit server in its own process, as a server would be: its media work must
    not compete with the agent for this interpreter's GIL."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "stt_agent",
        "server",
        "--dev",
        "--port",
        str(port),
        cwd=REPO,
        stdout=asyncio.subprocess.PIPE,
    )
    try:
        assert proc.stdout is not None
        line = await asyncio.wait_for(proc.stdout.readline(), 30)
        if b"ready" not in line:
            raise RuntimeError("the kit's LiveKit server did not start")
        yield f"ws://127.0.0.1:{port}"
    finally:
        proc.terminate()
        await proc.wait()


async def run(speakers: int) -> dict[str, Any]:
    refs = references()
    clips = CLIPS[:speakers]
    LocalSTT().prewarm()  # the model is loaded once per process, before the clock starts
    async with _kit_server() as url:
        settings = Settings(
            livekit_url=url, livekit_api_key="devkey", livekit_api_secret=Secret("secret")
        )
        handle = await stt_agent.start_agent(settings, agent_name=AGENT_NAME)
        captions: list[CaptionFinal] = []
        handle.feed.subscribe(lambda e: captions.append(e) if isinstance(e, CaptionFinal) else None)
        transcribed: set[str] = set()
        handle.on_status(lambda s: transcribed.update(s.participants))
        listener = rtc.Room()
        heard: dict[str, _Heard] = {}
        readers: list[asyncio.Task[None]] = []

        def on_track(track: rtc.Track, _pub: Any, participant: rtc.RemoteParticipant) -> None:
            async def read(into: _Heard) -> None:
                async for ev in rtc.AudioStream(track, sample_rate=SAMPLE_RATE, num_channels=1):
                    into.walls.append(time.time())
                    into.samples.append(np.frombuffer(bytes(ev.frame.data), np.int16).copy())

            if track.kind == rtc.TrackKind.KIND_AUDIO:
                readers.append(
                    asyncio.ensure_future(read(heard.setdefault(participant.identity, _Heard())))
                )

        listener.on("track_subscribed", on_track)
        voices: list[tuple[str, str, VirtualSpeaker]] = []
        try:
            await handle.wait_ready(timeout=_TIMEOUT_S)
            room = await open_room(settings, agent_name=AGENT_NAME, identity="listener")
            await listener.connect(url, room.token)
            for k, clip in enumerate(clips):
                identity = f"speaker-{k + 1}"
                speaker = VirtualSpeaker(speech_dir() / clip, identity=identity)
                speaker.source.trailing_silence_s = 2.0
                await speaker.join(url, mint_user_token(settings, room.room, identity=identity))
                voices.append((identity, clip, speaker))
            async with asyncio.timeout(_TIMEOUT_S):
                while not (transcribed >= {v[0] for v in voices} and set(heard) >= transcribed):
                    await asyncio.sleep(0.05)
            played_at = time.time()  # every speaker starts now (first frames within a loop turn)
            await asyncio.gather(*(s.play() for _, _, s in voices))
            for _, _, speaker in voices:
                await speaker.aclose()
            async with asyncio.timeout(_TIMEOUT_S):
                while handle.status.participants:
                    await asyncio.sleep(0.05)
        finally:
            for _, _, speaker in voices:
                await speaker.aclose()
            for task in readers:
                task.cancel()
            await listener.disconnect()
            await handle.stop()

    per_speaker = []
    latencies: list[float] = []
    caption_latencies: list[float] = []
    for identity, clip, _ in voices:
        finals = [u for u in handle.feed.utterances if u.participant == identity]
        delay = _transport_delay(
            await _pcm(speech_dir() / clip), heard.get(identity, _Heard()), played_at
        )
        kit = [u.latency_s for u in finals if u.latency_s is not None]
        kit_captions = [
            c.latency_s for c in captions if c.participant == identity and c.latency_s is not None
        ]
        if delay is not None:
            latencies += [lat + delay for lat in kit]
            caption_latencies += [lat + delay for lat in kit_captions]
        per_speaker.append(
            {
                "text": " ".join(u.text for u in finals),
                "identity": identity,
                "clip": clip,
                "finals": len(finals),
                "caption_finals": len(kit_captions),
                "wer": round(corpus_wer([refs[clip]], [" ".join(u.text for u in finals)]), 4),
                "transport_ms": None if delay is None else round(delay * 1000, 1),
                "kit_latency_ms_p50": round(float(np.median(kit)) * 1000, 1) if kit else None,
            }
        )
    return {
        "speakers": speakers,
        # this is a real-time test: a machine busy with other work shows in these numbers
        "load_average_1min": round(os.getloadavg()[0], 2),
        "eos_to_caption_final_ms_p50": _ms(caption_latencies, 50),
        "eos_to_caption_final_ms_p95": _ms(caption_latencies, 95),
        "eos_to_turn_ms_p50": _ms(latencies, 50),
        "eos_to_turn_ms_p95": _ms(latencies, 95),
        "per_speaker": per_speaker,
    }


def _ms(seconds: list[float], q: float) -> float | None:
    return round(float(np.percentile(seconds, q)) * 1000, 1) if seconds else None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.room", description=__doc__)
    parser.add_argument("--speakers", type=int, nargs="+", default=[1, 4])
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    # the stand-in's dev secret ("secret", as livekit-server --dev) is short on purpose
    warnings.filterwarnings("ignore", message="The HMAC key is")
    results = []
    for n in args.speakers:
        print(f"room mode, {n} speaker(s) at once…", file=sys.stderr, flush=True)
        results.append(asyncio.run(run(n)))
    if args.json:
        print(json.dumps(results))
        return 0
    for r in results:
        print(
            f"{r['speakers']} speaker(s): EOS -> caption final p50 / p95 "
            f"{r['eos_to_caption_final_ms_p50']} / {r['eos_to_caption_final_ms_p95']} ms, "
            f"EOS -> turn {r['eos_to_turn_ms_p50']} / {r['eos_to_turn_ms_p95']} ms "
            f"(load average {r['load_average_1min']})"
        )
        for s in r["per_speaker"]:
            print(
                f"  {s['identity']} {s['clip']}: {s['finals']} turns, "
                f"{s['caption_finals']} caption finals, WER {s['wer']:.1%}, "
                f"transport {s['transport_ms'] or 'not measurable'} ms, "
                f"kit p50 {s['kit_latency_ms_p50']} ms"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
