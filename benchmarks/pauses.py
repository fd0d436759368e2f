"""Pauses inside turns, and what Whisper's end-of-sentence confidence says at each:
`python -m benchmarks.pauses [CLIP...] [--noisy]`.

A diagnostic for choosing the turn-end rule, not part of the benchmark. It runs every clip
through the kit as fast as possible (the VAD segments it exactly as in real time) and records
each pause the VAD saw: where the speech stopped, how long the silence lasted before the
speaker went on (or the turn ended), and whether the reference's sentence ends there. Then it
decodes each pause's audio the way a speculative final would, with `trailing` seconds of the
silence kept, and prints Whisper's probability that the sentence is over, so a rule
("end the turn after S s of silence when the confidence is >= T") can be judged offline on
every pause at once: the turns it would end sooner, and the sentences it would cut.

It also asks LiveKit's on-device acoustic end-of-turn model (`livekit.local_inference.EOT`,
shipped in the installed `livekit-local-inference` wheel) for P(turn ended) on the last 1.2 s
of audio at `EOT_OFFSETS_S` into each pause, and judges "end the turn at silence S when
EOT >= T (else wait for the VAD's 0.45 s)", alone and with Whisper's confidence.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jiwer
import numpy as np
from livekit.local_inference import EOT, EOT_MAX_SAMPLES

from stt_agent.audio import SAMPLE_RATE
from stt_agent.engines import LocalSTT, load_whisper, local_stream
from stt_agent.engines.decoding import FINAL_WINDOW, Request, decode

from .clips import Clip, load_clips
from .noisy import noisy_clip
from .runs import run_kit
from .scoring import _reference_words, normalise

TRAILING_S = (0.03, 0.06, 0.1, 0.15, 0.2)
EOT_OFFSETS_S = (0.1, 0.15, 0.2, 0.25, 0.3)
VAD_SILENCE_S = 0.45  # the VAD's min_silence_duration: when a turn ends without a rule


@dataclass
class Pause:
    clip: str
    utterance: Any  # the stream's _Utterance
    speech_n: int  # samples of the utterance before the pause
    silence_s: float  # how long the VAD heard silence before speech (or the turn's end)
    turn_end: bool
    sentence_end: bool = False
    text: str = ""
    confidence: dict[float, float] | None = None
    eot: dict[float, float] | None = None  # P(turn ended) at each offset into the silence


def _hook(pauses: list[Pause], clip: list[str]) -> None:
    needed = ("_Utterance", "LocalSpeechStream")
    missing = [n for n in needed if not hasattr(local_stream, n)]
    if missing:
        raise SystemExit(
            f"stt_agent.engines.local_stream changed (missing {missing}); update the hooks"
        )
    utt = local_stream._Utterance
    append = utt.append

    def recording_append(self: Any, audio: Any, *, speechy: bool, window_s: float) -> None:
        if speechy and self.silence_s > 0:
            pauses.append(Pause(clip[0], self, self.speech_n, self.silence_s, False))
        append(self, audio, speechy=speechy, window_s=window_s)

    utt.append = recording_append
    finalise = local_stream.LocalSpeechStream._finalise

    async def recording_finalise(self: Any, loaded: Any, u: Any) -> None:
        pauses.append(Pause(clip[0], u, u.speech_n, u.silence_s, True))
        await finalise(self, loaded, u)

    local_stream.LocalSpeechStream._finalise = recording_finalise


def _label(clip: Clip, previous: str, pause: Pause) -> None:
    words, ends = _reference_words(clip.base_name, clip.reference)
    hyp = normalise(f"{previous} {pause.text}").split()
    if not hyp:
        return
    out = jiwer.process_words(" ".join(words), " ".join(hyp))
    position = -1
    for chunk in out.alignments[0]:
        for h in range(chunk.hyp_start_idx, chunk.hyp_end_idx):
            if chunk.type in ("equal", "substitute"):
                position = chunk.ref_start_idx + (h - chunk.hyp_start_idx)
            else:
                position = chunk.ref_start_idx - 1
            if h == len(hyp) - 1:
                pause.sentence_end = position >= 0 and ends[position]


async def collect(clips: list[Clip]) -> list[Pause]:
    pauses: list[Pause] = []
    current = [""]
    _hook(pauses, current)
    LocalSTT().prewarm()
    loaded = load_whisper()
    eot = EOT()
    for clip in clips:
        current[0] = clip.name
        start = len(pauses)
        record = await run_kit(clip, realtime=False)
        finals = {round((u.start or 0) * SAMPLE_RATE): u.text for u in record.finals}
        mine = pauses[start:]
        for pause in mine:
            u = pause.utterance
            confidence = {}
            for trailing in TRAILING_S:
                end = min(u.n, pause.speech_n + int(trailing * SAMPLE_RATE))
                request = Request(u.audio(end), 3, FINAL_WINDOW, "en", True)
                decoded = decode(loaded, [request])[0]
                confidence[trailing] = round(decoded.end_confidence, 3)
                pause.text = decoded.text
            pause.confidence = confidence
            probs = {}
            for offset in EOT_OFFSETS_S:
                end = min(u.n, pause.speech_n + int(offset * SAMPLE_RATE))
                pcm = (u.audio(end)[-EOT_MAX_SAMPLES:] * 32767).astype(np.int16)
                probs[offset] = round(float(eot.predict(pcm)), 3)
            pause.eot = probs
            before = " ".join(t for s, t in finals.items() if s < u.first_sample)
            _label(clip, before, pause)
    return pauses


def rules(pauses: list[Pause], trailing: float = 0.06) -> list[str]:
    """What "end the turn after S s of silence when the confidence is >= T" would do, for a
    grid of rules: the turns it ends sooner, and the pauses inside sentences it would turn
    into cuts (pauses where the speaker went on within S are safe)."""
    turns = [p for p in pauses if p.turn_end]
    inside = [p for p in pauses if not p.turn_end]
    cut_now = sum(not p.sentence_end for p in turns)
    mid = [p.silence_s for p in inside if not p.sentence_end]
    lines = [
        f"{len(turns)} turn ends ({cut_now} not at a sentence end), {len(inside)} pauses "
        f"inside turns; the longest pause inside a sentence that did not end a turn: "
        f"{max(mid, default=0):.2f} s of VAD silence",
        f"{'confidence >=':>13} {'silence >=':>10} {'sooner':>7} {'new turns':>9} "
        f"{'new cuts':>8} {'cut share':>9}",
    ]

    def conf(p: Pause) -> float:
        return (p.confidence or {}).get(trailing, 0.0)

    for t in (0.0, 0.5, 0.8, 0.9, 0.95):
        for s in (0.15, 0.25, 0.35):
            # A pause of `silence_s` reached S when it is at least one VAD window longer.
            new = [p for p in inside if p.silence_s > s + 0.01 and conf(p) >= t]
            cuts = sum(not p.sentence_end for p in new)
            sooner = sum(conf(p) >= t for p in turns)
            share = (cut_now + cuts) / (len(turns) + len(new))
            lines.append(
                f"{t:13.2f} {s:10.2f} {sooner:3d}/{len(turns):<3d} {len(new):9d} "
                f"{cuts:8d} {share:9.3f}"
            )
    return lines


def eot_rules(pauses: list[Pause], trailing: float = 0.06) -> list[str]:
    """What "end the turn at silence S when EOT >= T (and Whisper's confidence >= W), else at the
    VAD's 0.45 s" would do: turns ended sooner, pauses inside sentences newly cut, the resulting
    share of cut turns, and the silence saved per turn (mean; the EOS->final p50 moves by
    about the median)."""
    turns = [p for p in pauses if p.turn_end]
    inside = [p for p in pauses if not p.turn_end]
    cut_now = sum(not p.sentence_end for p in turns)
    lines = [
        f"VAD only: {cut_now}/{len(turns)} turn ends not at a sentence end "
        f"(cut share {cut_now / max(len(turns), 1):.3f})",
        f"{'EOT >=':>6} {'whisper >=':>10} {'silence':>7} {'sooner':>7} {'new turns':>9} "
        f"{'new cuts':>8} {'cut share':>9} {'saved mean':>10} {'saved p50':>9}",
    ]

    def fires(p: Pause, s: float, t: float, w: float) -> bool:
        e = (p.eot or {}).get(s, 0.0)
        c = (p.confidence or {}).get(trailing, 0.0)
        return e >= t and c >= w

    for w in (0.0, 0.5, 0.9):
        for t in (0.5, 0.6, 0.7, 0.8, 0.9):
            for s in EOT_OFFSETS_S:
                new = [p for p in inside if p.silence_s > s + 0.01 and fires(p, s, t, w)]
                cuts = sum(not p.sentence_end for p in new)
                sooner = [p for p in turns if fires(p, s, t, w)]
                share = (cut_now + cuts) / max(len(turns) + len(new), 1)
                saved = [VAD_SILENCE_S - s if p in sooner else 0.0 for p in turns]
                lines.append(
                    f"{t:6.2f} {w:10.2f} {s:7.2f} {len(sooner):3d}/{len(turns):<3d} "
                    f"{len(new):9d} {cuts:8d} {share:9.3f} "
                    f"{1000 * float(np.mean(saved or [0])):8.0f}ms "
                    f"{1000 * float(np.median(saved or [0])):7.0f}ms"
                )
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.pauses")
    parser.add_argument("clips", nargs="*")
    parser.add_argument("--noisy", action="store_true")
    parser.add_argument("--out", type=Path, default=None, help="JSON lines here")
    args = parser.parse_args()

    async def go() -> list[Pause]:
        clips = load_clips(args.clips or None)
        with tempfile.TemporaryDirectory() as tmp:
            if args.noisy:
                clips += [await noisy_clip(c, Path(tmp), seed=i) for i, c in enumerate(clips)]
            return await collect(clips)

    pauses = asyncio.run(go())
    lines = []
    for p in pauses:
        row = {
            "clip": p.clip,
            "silence_s": round(p.silence_s, 3),
            "turn_end": p.turn_end,
            "sentence_end": p.sentence_end,
            "confidence": p.confidence,
            "eot": p.eot,
            "text": p.text[-40:],
        }
        lines.append(json.dumps(row))
        print(
            f"{p.clip[:28]:28} {p.silence_s:5.2f} {'T' if p.turn_end else '-'} "
            f"{'S' if p.sentence_end else '-'} "
            + " ".join(f"{c:4.2f}" for c in (p.confidence or {}).values())
            + " | eot "
            + " ".join(f"{c:4.2f}" for c in (p.eot or {}).values())
            + f"  …{p.text[-40:]}"
        )
    print("\n".join(rules(pauses)))
    print("\n".join(eot_rules(pauses)))
    if args.out:
        args.out.write_text("\n".join(lines) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
