"""Where the kit's latency goes: `python -m benchmarks.breakdown [CLIP...] [--noisy]`.

A diagnostic, not part of the benchmark. It runs clips through the kit in real time with
timestamps hooked onto the local engine (the VAD's utterance start, every decode:
when it was asked for, when the model's thread took it in a batch, how long the batch ran) and
splits

* speech onset -> first interim into: the VAD's start of speech, the wait for the first
  decodes (two must agree before words are shown), queueing, decoding, delivery;
* EOS -> final into: the VAD's own end of speech (its last speechy window), the wait for the
  speculative decode, its queueing and decoding, and whether the turn ended early (Whisper
  sure the sentence was over) or by the VAD's full silence.

Each batch is timed through the public seam `LoadedModel.decoder`; when a decode was asked
for, and by which step of a turn, needs the stream's private methods
(`stt_agent.engines.local_stream`): when those change, this script says so instead of
guessing.
"""

from __future__ import annotations

import argparse
import asyncio
import contextvars
import statistics
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from stt_agent.audio import SAMPLE_RATE
from stt_agent.engines import LocalSTT, load_whisper, local_stream

from .clips import Clip, end_of_speech, load_clips, speech_onset
from .noisy import noisy_clip
from .runs import run_kit

_kind: contextvars.ContextVar[str] = contextvars.ContextVar("decode_kind", default="final")


@dataclass
class Decode:
    kind: str  # interim | speculative | final
    audio_s: float
    asked: float  # wall clock
    started: float = 0.0
    ended: float = 0.0
    batch: int = 0


@dataclass
class Trace:
    decodes: list[Decode] = field(default_factory=list)
    active: dict[int, Decode] = field(default_factory=dict)  # by id() of the audio array
    utterances: dict[int, dict[str, float]] = field(default_factory=dict)  # by first sample


def install(trace: Trace, model: str) -> None:
    needed = ("_decode_async", "_Utterance", "LocalSpeechStream")
    missing = [n for n in needed if not hasattr(local_stream, n)]
    if missing:
        raise SystemExit(
            f"stt_agent.engines.local_stream changed (missing {missing}); update the hooks"
        )
    loaded = load_whisper(model)
    decode, decode_async = loaded.decoder, local_stream._decode_async
    stream_cls, utt_cls = local_stream.LocalSpeechStream, local_stream._Utterance

    def timed_decode(model: Any, requests: Any) -> Any:
        entries = [trace.active.pop(id(r.audio), None) for r in requests]
        started = time.time()
        try:
            return decode(model, requests)
        finally:
            ended = time.time()
            for entry in entries:
                if entry is not None:
                    entry.started, entry.ended, entry.batch = started, ended, len(requests)

    async def timed_decode_async(model: Any, audio: Any, **kw: Any) -> Any:
        kind = _kind.get()
        if kw.get("end_confidence"):
            kind = "speculative"
        entry = Decode(kind, audio.size / SAMPLE_RATE, time.time())
        trace.decodes.append(entry)
        trace.active[id(audio)] = entry
        return await decode_async(model, audio, **kw)

    original_interim = stream_cls._maybe_interim

    def maybe_interim(self: Any, *args: Any, **kwargs: Any) -> Any:
        token = _kind.set("interim")
        try:
            return original_interim(self, *args, **kwargs)
        finally:
            _kind.reset(token)

    original_finalise = stream_cls._finalise

    async def finalise(self: Any, loaded: Any, u: Any) -> None:
        marks = trace.utterances.setdefault(u.first_sample, {})
        marks["turn_end"] = time.time()
        marks["speech_end_s"] = (u.first_sample + u.speech_n) / SAMPLE_RATE
        marks["silence_s"] = u.silence_s
        marks["early"] = float(self._turn_over(u))
        await original_finalise(self, loaded, u)

    original_init = utt_cls.__init__

    def utterance_init(self: Any, first_sample: int, audio: Any) -> None:
        original_init(self, first_sample, audio)
        trace.utterances.setdefault(first_sample, {})["vad_start"] = time.time()

    loaded.decoder = timed_decode  # the public seam: this process only runs the breakdown
    local_stream._decode_async = timed_decode_async
    stream_cls._maybe_interim = maybe_interim
    stream_cls._finalise = finalise
    utt_cls.__init__ = utterance_init


def _median(values: list[float]) -> str:
    return f"{statistics.median(values):6.0f}" if values else "   n/a"


async def analyse(clips: list[Clip], repeats: int, each: bool = False) -> None:
    trace = Trace()
    engine = LocalSTT()
    install(trace, engine.model)
    engine.prewarm()
    rows: dict[str, list[float]] = {}

    def add(name: str, value: float, scale: float = 1000) -> None:
        rows.setdefault(name, []).append(value * scale)

    for _ in range(repeats):
        for clip in clips:
            trace.decodes.clear()
            trace.utterances.clear()
            record = await run_kit(clip, realtime=True)
            t0 = record.first_frame_at or 0.0
            decodes = sorted(trace.decodes, key=lambda d: d.asked)
            previous_final = previous_end = 0.0
            for event in record.events:
                if not event.final or event.start is None or event.end is None:
                    continue
                marks = trace.utterances.get(round(event.start * SAMPLE_RATE), {})
                eos = end_of_speech(clip, event.start, event.end)
                onset = speech_onset(clip, max(event.start, previous_end + 0.3))
                previous_end = event.end
                mine = [d for d in decodes if previous_final < d.asked <= event.received_at]
                first = next(
                    (
                        e
                        for e in record.events
                        if not e.final and previous_final < e.received_at < event.received_at
                    ),
                    None,
                )
                previous_final = event.received_at
                interims = [d for d in mine if d.kind == "interim" and d.ended]
                if onset is not None and "vad_start" in marks:
                    onset_wall = t0 + onset
                    add("onset -> VAD start of speech", marks["vad_start"] - onset_wall)
                    if interims:
                        add(
                            "VAD start -> 1st interim decode asked",
                            interims[0].asked - marks["vad_start"],
                        )
                        add("interim decode queued", interims[0].started - interims[0].asked)
                        add(
                            "interim decode ran (its batch)",
                            interims[0].ended - interims[0].started,
                        )
                        add(
                            "  interim decodes before words shown",
                            float(
                                sum(
                                    d.ended <= (first.received_at if first else 0) for d in interims
                                )
                            ),
                            1,
                        )
                    if first is not None:
                        add("= onset -> first interim", first.received_at - onset_wall)
                if eos is not None and not eos.clipped and "turn_end" in marks:
                    eos_wall = t0 + eos.at_s
                    add("EOS -> VAD's last speech", marks["speech_end_s"] - eos.at_s)
                    spec = [d for d in mine if d.kind == "speculative" and d.ended]
                    if spec:
                        add("EOS -> speculative decode asked", spec[-1].asked - eos_wall)
                        add("speculative decode queued", spec[-1].started - spec[-1].asked)
                        add("speculative decode ran (its batch)", spec[-1].ended - spec[-1].started)
                        # The floor without any wait for silence: the turn committed the
                        # moment its speculative final is ready.
                        add("  EOS -> speculative final ready", spec[-1].ended - eos_wall)
                    add("  silence when the turn ended (ms)", marks["silence_s"])
                    add("  turns ended early (1000 = all)", marks["early"])
                    add("EOS -> turn ended", marks["turn_end"] - eos_wall)
                    add("turn ended -> final in the feed", event.received_at - marks["turn_end"])
                    add("= EOS -> final (pinned down)", event.received_at - eos_wall)
                    if each:
                        asked = (spec[-1].asked - eos_wall) * 1000 if spec else -1
                        ran = (spec[-1].ended - spec[-1].started) * 1000 if spec else -1
                        print(
                            f"{clip.name[:34]:34} {event.end - event.start:5.1f} s "
                            f"silence {marks['silence_s'] * 1000:4.0f} early {marks['early']:.0f} "
                            f"spec asked {asked:5.0f} ran {ran:4.0f} "
                            f"final {(event.received_at - eos_wall) * 1000:5.0f} ms"
                        )
    print(f"{'step (over utterances, ms)':44} {'p50':>6} {'p95':>6} {'n':>4}")
    for name, values in rows.items():
        p95 = f"{float(np.percentile(values, 95)):6.0f}" if values else "   n/a"
        print(f"{name:44} {_median(values)} {p95} {len(values):4d}")


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.breakdown")
    parser.add_argument("clips", nargs="*", help="clip names (default: every clip)")
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--noisy", action="store_true", help="also their noisy 48 kHz versions")
    parser.add_argument("--each", action="store_true", help="one line per final too")
    args = parser.parse_args()

    async def go() -> None:
        clips = load_clips(args.clips or None)
        with tempfile.TemporaryDirectory() as tmp:
            if args.noisy:
                clips += [await noisy_clip(c, Path(tmp), seed=i) for i, c in enumerate(clips)]
            await analyse(clips, args.repeats, args.each)

    asyncio.run(go())


if __name__ == "__main__":
    main()
