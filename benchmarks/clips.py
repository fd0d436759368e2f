"""The recordings, and where speech starts and ends in them, measured from the audio itself.

Latency is timed from the end of speech in the signal, not from what either system's VAD
believes, so the kit and the baseline are held to the same clock:

* the clip is cut into 20 ms frames and each frame's RMS is computed;
* a frame is speech when its RMS exceeds -35 dB relative to the clip's 95th-percentile frame
  RMS (`SPEECH_THRESHOLD_DB`; the 95th percentile stands for "loud speech" and is robust to a
  few clicks);
* end of speech (EOS) for a final utterance is the end of the last speech frame in
  [u.start, u.end + 0.3 s]; speech onset is the first speech frame at or after u.start - 0.3 s.

Caveat: where a recording's noise floor sits above -35 dB (the JFK clip's crowd hiss is at
about -31 dB), every frame counts as speech and EOS falls on the window's end, which makes
mid-clip latencies look shorter than they are. `end_of_speech` reports when that happens.
"""

from __future__ import annotations

import wave
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .scoring import SPEECH_DIR, references

SAMPLE_RATE = 16_000
FRAME_S = 0.02
FRAME_SAMPLES = int(SAMPLE_RATE * FRAME_S)
SPEECH_THRESHOLD_DB = -35.0
WINDOW_TAIL_S = 0.3  # how far after u.end (and before u.start) speech is looked for

# Short clips with several turns first: the quick run uses a prefix of this order.
QUICK_CLIPS = (
    "jfk_inaugural_1961.wav",
    "librivox_sense_sensibility_0870.wav",
    "cmu_goforward.wav",
)
TINY_CLIP = "cmu_goforward.wav"


@dataclass(frozen=True)
class Clip:
    name: str
    path: Path
    reference: str
    pcm: np.ndarray = field(repr=False)  # int16 mono 16 kHz, exactly what the sessions are fed
    speech: np.ndarray = field(repr=False)  # bool per 20 ms frame

    @property
    def duration_s(self) -> float:
        return self.pcm.size / SAMPLE_RATE


def speech_frames(pcm: np.ndarray, threshold_db: float = SPEECH_THRESHOLD_DB) -> np.ndarray:
    """One bool per 20 ms frame: RMS above `threshold_db` re the 95th-percentile frame RMS."""
    n = pcm.size // FRAME_SAMPLES
    frames = pcm[: n * FRAME_SAMPLES].astype(np.float64).reshape(n, FRAME_SAMPLES)
    rms = np.sqrt((frames**2).mean(axis=1))
    if n == 0:
        return np.zeros(0, dtype=bool)
    reference = np.percentile(rms, 95)
    return rms > reference * 10 ** (threshold_db / 20)


def load_clip(path: Path, reference: str) -> Clip:
    with wave.open(str(path)) as w:
        if (w.getframerate(), w.getnchannels(), w.getsampwidth()) != (SAMPLE_RATE, 1, 2):
            raise ValueError(f"{path}: expected 16 kHz mono 16-bit WAV")
        pcm = np.frombuffer(w.readframes(w.getnframes()), dtype=np.int16).copy()
    return Clip(path.name, path, reference, pcm, speech_frames(pcm))


def load_clips(names: list[str] | tuple[str, ...] | None = None) -> list[Clip]:
    refs = references(SPEECH_DIR)
    chosen = list(refs) if names is None else list(names)
    return [load_clip(SPEECH_DIR / name, refs[name]) for name in chosen]


@dataclass(frozen=True)
class SpeechEdge:
    at_s: float  # audio seconds
    clipped: bool  # speech ran to the edge of the search window: the true edge is unknown


def end_of_speech(clip: Clip, start: float, end: float) -> SpeechEdge | None:
    """End of the last speech frame whose start lies in [start, end + 0.3 s]."""
    first = max(0, int(np.floor(start / FRAME_S)))
    last = min(clip.speech.size, int(np.ceil((end + WINDOW_TAIL_S) / FRAME_S)))
    hits = np.flatnonzero(clip.speech[first:last])
    if hits.size == 0:
        return None
    index = first + int(hits[-1])
    clipped = index == last - 1 and last < clip.speech.size
    return SpeechEdge((index + 1) * FRAME_S, clipped)


def speech_onset(clip: Clip, start: float) -> float | None:
    """Start of the first speech frame at or after `start - 0.3 s`."""
    first = max(0, int(np.ceil((start - WINDOW_TAIL_S) / FRAME_S)))
    hits = np.flatnonzero(clip.speech[first:])
    return None if hits.size == 0 else (first + int(hits[0])) * FRAME_S
