"""Where the kit's latency goes: `python -m benchmarks.breakdown [CLIP...]`.

A diagnostic, not part of the benchmark. It runs clips through the kit in real time with
timestamps hooked onto `stt_agent.engines` internals (the VAD's utterance start and end, every
decode: when it was asked for, when the decoder thread took it, how long it ran) and splits

* speech onset -> first interim into: VAD start, waiting for the 1 s of audio an interim
  needs, queueing behind another decode, decoding, and delivery to the feed;
* EOS -> final into: the VAD's hang-over, the wait for the decode (speculative or not) and
  delivery through the session and turn handlers.

The hooks wrap private functions of stt_agent.engines; when those change, this script says
so instead of guessing.
"""

from __future__ import annotations

import argparse
import asyncio
import contextvars
import statistics
import time
from dataclasses import dataclass, field
from typing import Any

from stt_agent import engines
from stt_agent.engines import LocalSTT

from .clips import Clip, end_of_speech, load_clips, speech_onset
from .runs import run_kit

_kind: contextvars.ContextVar[str] = contextvars.ContextVar("decode_kind", default="other")


@dataclass
class Decode:
    kind: str  # interim | speculative | final | other
    audio_s: float
    asked: float  # wall clock
    pending_before: int
    started: float = 0.0
    ended: float = 0.0


@dataclass
class Trace:
    decodes: list[Decode] = field(default_factory=list)
    active: dict[int, Decode] = field(default_factory=dict)  # by id() of the audio array
    utterances: dict[int, dict[str, float]] = field(default_factory=dict)  # by first sample


def install(trace: Trace) -> None:
    needed = ("_decode", "_decode_async", "_Utterance", "LocalSpeechStream")
    missing = [n for n in needed if not hasattr(engines, n)]
    if missing:
        raise SystemExit(f"stt_agent.engines changed (missing {missing}); update the hooks")
    decode, decode_async = engines._decode, engines._decode_async
    stream_cls, utt_cls = engines.LocalSpeechStream, engines._Utterance

    def timed_decode(loaded: Any, audio: Any, **kw: Any) -> Any:
        entry = trace.active.pop(id(audio), None)
        if entry is not None:
            entry.started = time.time()
        try:
            return decode(loaded, audio, **kw)
        finally:
            if entry is not None:
                entry.ended = time.time()

    async def timed_decode_async(loaded: Any, audio: Any, **kw: Any) -> Any:
        entry = Decode(_kind.get(), audio.size / engines.SAMPLE_RATE, time.time(), loaded.pending)
        trace.decodes.append(entry)
        trace.active[id(audio)] = entry
        return await decode_async(loaded, audio, **kw)

    def tagged(kind: str, method: Any) -> Any:
        def call(self: Any, *args: Any, **kwargs: Any) -> Any:
            token = _kind.set(kind)
            try:
                return method(self, *args, **kwargs)
            finally:
                _kind.reset(token)

        return call

    original_finalise = stream_cls._finalise

    async def finalise(self: Any, loaded: Any, u: Any) -> None:
        marks = trace.utterances.setdefault(u.first_sample, {})
        marks["vad_end"] = time.time()
        marks["speech_end_s"] = (u.first_sample + u.speech_n) / engines.SAMPLE_RATE
        speculation = u.speculation
        marks["speculation_used"] = float(
            speculation is not None and speculation[0] == u.final_end()
        )
        token = _kind.set("final")
        try:
            await original_finalise(self, loaded, u)
        finally:
            _kind.reset(token)

    original_init = utt_cls.__init__

    def utterance_init(self: Any, first_sample: int, audio: Any) -> None:
        original_init(self, first_sample, audio)
        trace.utterances.setdefault(first_sample, {})["vad_start"] = time.time()
        trace.utterances[first_sample]["vad_start_audio_s"] = (
            first_sample + audio.size
        ) / engines.SAMPLE_RATE

    engines._decode = timed_decode
    engines._decode_async = timed_decode_async
    stream_cls._maybe_interim = tagged("interim", stream_cls._maybe_interim)
    stream_cls._maybe_speculate = tagged("speculative", stream_cls._maybe_speculate)
    stream_cls._finalise = finalise
    utt_cls.__init__ = utterance_init


def _median(values: list[float]) -> str:
    return f"{statistics.median(values):6.0f}" if values else "   n/a"


async def analyse(clips: list[Clip], repeats: int) -> None:
    trace = Trace()
    install(trace)
    LocalSTT().prewarm()
    rows: dict[str, list[float]] = {}

    def add(name: str, value: float) -> None:
        rows.setdefault(name, []).append(value * 1000)

    for _ in range(repeats):
        for clip in clips:
            trace.decodes.clear()
            trace.utterances.clear()
            record = await run_kit(clip, realtime=True)
            t0 = record.first_frame_at or 0.0
            decodes = sorted(trace.decodes, key=lambda d: d.asked)
            previous_final = 0.0
            for event in record.events:
                if not event.final or event.start is None or event.end is None:
                    continue
                marks = trace.utterances.get(round(event.start * engines.SAMPLE_RATE), {})
                eos = end_of_speech(clip, event.start, event.end)
                onset = speech_onset(clip, event.start)
                mine = [d for d in decodes if previous_final < d.asked <= event.received_at]
                interims = [e for e in record.events if not e.final]
                first = next(
                    (e for e in interims if previous_final < e.received_at < event.received_at),
                    None,
                )
                previous_final = event.received_at
                if onset is not None and "vad_start" in marks:
                    onset_wall = t0 + onset
                    add("onset -> VAD start of speech", marks["vad_start"] - onset_wall)
                    first_interim = next((d for d in mine if d.kind == "interim"), None)
                    if first_interim is not None and first_interim.ended:
                        add(
                            "VAD start -> interim decode asked",
                            first_interim.asked - marks["vad_start"],
                        )
                        add("  audio in that first interim (s*1000)", first_interim.audio_s)
                        add("interim decode queued", first_interim.started - first_interim.asked)
                        add("interim decode ran", first_interim.ended - first_interim.started)
                        if first is not None:
                            add(
                                "interim decoded -> in the feed",
                                first.received_at - first_interim.ended,
                            )
                    if first is not None:
                        add("= onset -> first interim", first.received_at - onset_wall)
                if eos is not None and "vad_end" in marks:
                    eos_wall = t0 + eos.at_s
                    final = next(
                        (d for d in reversed(mine) if d.kind in ("speculative", "final")), None
                    )
                    add("EOS -> VAD end of utterance", marks["vad_end"] - eos_wall)
                    add("  speculation used (1000 = yes)", marks.get("speculation_used", 0.0))
                    if final is not None and final.ended:
                        add("EOS -> final decode asked", final.asked - eos_wall)
                        add("final decode queued", final.started - final.asked)
                        add("final decode ran", final.ended - final.started)
                        add("  audio in final decode (s*1000)", final.audio_s)
                        add(
                            "decoded -> final in the feed",
                            event.received_at - max(final.ended, marks["vad_end"]),
                        )
                    add("= EOS -> final", event.received_at - eos_wall)
    print(f"{'step (median over utterances, ms)':44} {'p50':>6} {'n':>4}")
    for name, values in rows.items():
        print(f"{name:44} {_median(values)} {len(values):4d}")


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.breakdown")
    parser.add_argument("clips", nargs="*", help="clip names (default: every clip)")
    parser.add_argument("--repeats", type=int, default=1)
    args = parser.parse_args()
    asyncio.run(analyse(load_clips(args.clips or None), args.repeats))


if __name__ == "__main__":
    main()
