"""How many attendees one workshop carries in real time: the kit's LiveKit server and one worker.

`python -m benchmarks.workshop [--speakers 1 2 4 6 8] [--silent 0] [--seconds 30] [--json]`
opens a workshop exactly as notebook 06 does (`open_workshop`: the kit's LiveKit development
server and the worker in this process, the local engine), then N attendees speak at the same
time, each a different sequence of the shipped recordings, for about `--seconds`, while
`--silent` more attendees are present with their microphone on, saying nothing (or muted,
`--muted`: the track is published but sends nothing). The attendees are
`VirtualSpeaker`s in this process too (real attendees' browsers run elsewhere, so this is a
little harsher than a real room).

Per N it reports the kit's end of speech -> final (`Utterance.latency_s`, p50 and p95), the
WER per speaker against the recordings' reference texts, and how long after the speakers
stopped the last final came out. "Real time" here: p95 end of speech -> final under 2 s, the
last final within 3 s of the end, and no speaker's WER above 0.3.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
import warnings
from typing import Any

import numpy as np

from stt_agent import samples
from stt_agent.config import Secret, Settings
from stt_agent.engines import LocalSTT
from stt_agent.room.workshop import open_workshop

from .room import _standin
from .scoring import corpus_wer

RATE = 16_000
_GAP = np.zeros(RATE // 2, dtype=np.int16)  # half a second between recordings
_TIMEOUT_S = 180.0
REAL_TIME = {"p95_s": 2.0, "drain_s": 3.0, "wer": 0.3}


def _script(k: int, seconds: float) -> tuple[np.ndarray, str]:
    """Speaker k's audio (recordings in a rotated order) and its reference text."""
    names = samples.names()
    order = names[k % len(names) :] + names[: k % len(names)]
    parts: list[np.ndarray] = []
    texts: list[str] = []
    total = 0.0
    for name in order:
        if total >= seconds:
            break
        parts += [samples.load(name), _GAP]
        texts.append(samples.info(name).text)
        total += samples.info(name).seconds + 0.5
    return np.concatenate(parts), " ".join(texts)


async def run(
    speakers: int,
    seconds: float,
    silent: int = 0,
    separate_server: bool = False,
    muted: bool = False,
) -> dict[str, Any]:
    LocalSTT().prewarm()  # the model is loaded once, before the clock starts
    if separate_server:
        # `python -m stt_agent server --dev` in a process of its own, as a teacher may run it
        async with _standin() as url:
            settings = Settings(
                livekit_url=url, livekit_api_key="devkey", livekit_api_secret=Secret("secret")
            )
            return await _run(settings, speakers, seconds, silent, muted)
    return await _run(Settings(), speakers, seconds, silent, muted)


async def _run(
    settings: Settings, speakers: int, seconds: float, silent: int, muted: bool
) -> dict[str, Any]:
    workshop = await open_workshop(settings, host="127.0.0.1")
    try:
        voices = []
        for k in range(speakers):
            audio, reference = _script(k, seconds)
            voice = await workshop.virtual_speaker(f"attendee-{k + 1}", audio)
            voices.append((voice, reference))
        # present with the microphone on, saying nothing: most of a workshop at any moment
        quiet = np.zeros(int(seconds * RATE), dtype=np.int16)
        listeners = [
            await workshop.virtual_speaker(f"listener-{k + 1}", quiet) for k in range(silent)
        ]
        names = {v.identity for v, _ in voices} | {v.identity for v in listeners}
        async with asyncio.timeout(_TIMEOUT_S):
            while not names <= set(workshop.handle.status.participants):
                await asyncio.sleep(0.05)
        started = time.monotonic()
        talking = [v.play() for v, _ in voices]
        if not muted:
            talking += [v.play() for v in listeners]
        await asyncio.gather(*talking)
        spoken = time.monotonic()
        for voice in [v for v, _ in voices] + listeners:
            await voice.aclose()
        last_final = spoken
        async with asyncio.timeout(_TIMEOUT_S):
            seen = 0
            while workshop.handle.status.participants:
                if len(workshop.handle.feed.utterances) != seen:
                    seen, last_final = len(workshop.handle.feed.utterances), time.monotonic()
                await asyncio.sleep(0.05)
        finals = list(workshop.handle.feed.utterances)
    finally:
        await workshop.close()
    latencies = [u.latency_s for u in finals if u.latency_s is not None]
    per_speaker = []
    for voice, reference in voices:
        said = " ".join(u.text for u in finals if u.participant == voice.identity)
        per_speaker.append(round(corpus_wer([reference], [said]), 3))
    p50, p95 = (float(np.percentile(latencies, q)) if latencies else float("nan") for q in (50, 95))
    drain = max(0.0, last_final - spoken)
    return {
        "speakers": speakers,
        "silent_attendees": silent,
        "silent_are_muted": muted,
        "server": "in the kernel" if settings.livekit_url == "" else "own process",
        "audio_s": round(spoken - started, 1),
        "eos_to_final_s_p50": round(p50, 2),
        "eos_to_final_s_p95": round(p95, 2),
        "last_final_after_end_s": round(drain, 1),
        "wer_per_speaker": per_speaker,
        "real_time": p95 < REAL_TIME["p95_s"]
        and drain < REAL_TIME["drain_s"]
        and max(per_speaker) <= REAL_TIME["wer"],
        "load_average_1min": round(os.getloadavg()[0], 2),
        "cpus": os.cpu_count(),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.workshop", description=__doc__)
    parser.add_argument("--speakers", type=int, nargs="+", default=[1, 2, 4, 6, 8])
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument(
        "--silent", type=int, default=0, help="attendees present with the microphone on, silent"
    )
    parser.add_argument(
        "--separate-server",
        action="store_true",
        help="run the kit's LiveKit server in its own process (python -m stt_agent server)",
    )
    parser.add_argument(
        "--muted",
        action="store_true",
        help="the silent attendees' microphones are muted (a published track sending nothing)",
    )
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    # the separate server's dev secret ("secret", as livekit-server --dev) is short on purpose
    warnings.filterwarnings("ignore", message="The HMAC key is")
    results = []
    for n in args.speakers:
        print(f"workshop, {n} attendee(s) speaking at once…", file=sys.stderr, flush=True)
        result = asyncio.run(run(n, args.seconds, args.silent, args.separate_server, args.muted))
        results.append(result)
        if not args.json:
            print(
                f"{n:>2} speakers (+{args.silent} {'muted' if args.muted else 'silent'}): "
                "EOS->final p50 "
                f"{result['eos_to_final_s_p50']:.2f} s, "
                f"p95 {result['eos_to_final_s_p95']:.2f} s, last final "
                f"{result['last_final_after_end_s']:.1f} s after the end, WER "
                f"{', '.join(f'{w:.0%}' for w in result['wer_per_speaker'])}; "
                f"{'real time' if result['real_time'] else 'NOT real time'} "
                f"(server {result['server']}, load {result['load_average_1min']}, "
                f"{result['cpus']} CPUs)",
                flush=True,
            )
    if args.json:
        print(json.dumps(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
