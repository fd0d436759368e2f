"""The recordings, and where speech starts and ends in them, measured from the audio itself.

Latency is timed from the end of speech in the signal, not from what either system's VAD
believes, so the kit and the baseline are held to the same clock:

* the clip is cut into 20 ms frames and each frame's RMS is computed;
* a frame is speech when its RMS exceeds both -35 dB relative to the clip's 95th-percentile
  frame RMS (`SPEECH_THRESHOLD_DB`; the 95th percentile stands for "loud speech" and is
  robust to a few clicks) and the clip's noise floor plus 10 dB (`FLOOR_MARGIN_DB`; the floor
  is the 2nd-percentile frame, digital silence left out). Most of these recordings have a
  floor above -35 dB (the JFK clip's crowd hiss is at -33 dB, the LibriVox readings' room at
  -30 dB): with the -35 dB rule alone every frame was speech, so pauses vanished, onsets
  moved to the start of the file and ends of speech to the end of the search window;
* end of speech (EOS) for a final utterance is the end of the last speech frame in
  [u.start, u.end + 0.3 s]; speech onset is the first speech frame at or after u.start - 0.3 s.

`end_of_speech` says when speech runs on to the window's end: there the true EOS is later
than the window allows, the latency an underestimate, and the headline leaves it out.
"""

from __future__ import annotations

import wave
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .scoring import references
from .speech import speech_dir

SAMPLE_RATE = 16_000
FRAME_S = 0.02
FRAME_SAMPLES = int(SAMPLE_RATE * FRAME_S)
SPEECH_THRESHOLD_DB = -35.0
FLOOR_MARGIN_DB = 10.0
_DIGITAL_SILENCE_DB = -60.0  # frames this far below loud speech are padding, not a room
WINDOW_TAIL_S = 0.3  # how far after u.end (and before u.start) speech is looked for

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

    @property
    def base_name(self) -> str:
        """The shared recording this clip was made from ("noisy:x.wav" -> "x.wav")."""
        return self.name.rsplit(":", 1)[-1]


def speech_frames(pcm: np.ndarray, threshold_db: float = SPEECH_THRESHOLD_DB) -> np.ndarray:
    """One bool per 20 ms frame: RMS above `threshold_db` re the 95th-percentile frame RMS
    and `FLOOR_MARGIN_DB` above the clip's noise floor."""
    n = pcm.size // FRAME_SAMPLES
    if n == 0:
        return np.zeros(0, dtype=bool)
    frames = pcm[: n * FRAME_SAMPLES].astype(np.float64).reshape(n, FRAME_SAMPLES)
    rms = np.sqrt((frames**2).mean(axis=1))
    reference = np.percentile(rms, 95)
    if reference <= 0:
        return np.zeros(n, dtype=bool)
    db = 20 * np.log10(np.maximum(rms, 1e-9) / reference)
    room = db[db > _DIGITAL_SILENCE_DB]
    floor = float(np.percentile(room, 2)) if room.size else _DIGITAL_SILENCE_DB
    return db > max(threshold_db, floor + FLOOR_MARGIN_DB)


def load_clip(path: Path, reference: str) -> Clip:
    with wave.open(str(path)) as w:
        if (w.getframerate(), w.getnchannels(), w.getsampwidth()) != (SAMPLE_RATE, 1, 2):
            raise ValueError(f"{path}: expected 16 kHz mono 16-bit WAV")
        pcm = np.frombuffer(w.readframes(w.getnframes()), dtype=np.int16).copy()
    return Clip(path.name, path, reference, pcm, speech_frames(pcm))


def load_clips(names: list[str] | tuple[str, ...] | None = None) -> list[Clip]:
    folder = speech_dir()
    refs = references(folder)
    chosen = list(refs) if names is None else list(names)
    return [load_clip(folder / name, refs[name]) for name in chosen]


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
