"""Noisy 48 kHz stereo versions of the shared clips, made at run time.

A laptop microphone or a room track is rarely a clean 16 kHz mono studio recording, so the
latency runs also use each clip as it would arrive from one: resampled to 48 kHz by PyAV,
upmixed to stereo (the right channel 2 dB quieter), with independent pink noise in each
channel at `SNR_DB` below the speech's level, and noise-only lead-in and tail (a live
microphone never goes digitally silent). The session decodes the file through the kit's own
`FileSource` (PyAV, down to 16 kHz mono), exactly as any other file.

End of speech and onset for these come from the clean clip (shifted by the lead-in): the
noise would otherwise hide where speech ends, which is the point of adding it.
"""

from __future__ import annotations

import wave
from pathlib import Path

import av
import numpy as np

from stt_agent.audio import FileSource

from .clips import FRAME_S, SAMPLE_RATE, Clip

RATE = 48_000
SNR_DB = 15.0  # speech level over noise level (RMS over speech frames vs noise RMS)
LEAD_S = 0.5
TAIL_S = 1.5
_RIGHT_GAIN = 10 ** (-2 / 20)


def pink_noise(n: int, rng: np.random.Generator) -> np.ndarray:
    """Unit-RMS 1/f noise: white noise shaped in the frequency domain."""
    spectrum = np.fft.rfft(rng.standard_normal(n))
    f = np.arange(spectrum.size)
    spectrum[1:] /= np.sqrt(f[1:])
    spectrum[0] = 0
    noise = np.fft.irfft(spectrum, n)
    return noise / (np.sqrt(np.mean(noise**2)) or 1.0)


def _upsample(pcm: np.ndarray) -> np.ndarray:
    """16 kHz mono int16 -> 48 kHz float32 mono, with PyAV's (FFmpeg's) resampler."""
    frame = av.AudioFrame.from_ndarray(pcm.reshape(1, -1), format="s16", layout="mono")
    frame.sample_rate = SAMPLE_RATE
    resampler = av.AudioResampler(format="flt", layout="mono", rate=RATE)
    out = [f.to_ndarray().reshape(-1) for f in resampler.resample(frame)]
    out += [f.to_ndarray().reshape(-1) for f in resampler.resample(None)]
    return np.concatenate(out).astype(np.float32)


def write_noisy(clip: Clip, folder: Path, *, seed: int = 0) -> Path:
    """`clip` as a noisy 48 kHz stereo 16-bit WAV in `folder`; returns its path."""
    speech = _upsample(clip.pcm)
    frames = np.repeat(clip.speech, int(FRAME_S * RATE))[: speech.size]
    level = np.sqrt(np.mean(speech[: frames.size][frames] ** 2)) if frames.any() else 0.1
    noise_rms = level * 10 ** (-SNR_DB / 20)
    lead, tail = int(LEAD_S * RATE), int(TAIL_S * RATE)
    n = lead + speech.size + tail
    rng = np.random.default_rng(seed)
    stereo = np.stack([pink_noise(n, rng), pink_noise(n, rng)], axis=1) * noise_rms
    stereo[lead : lead + speech.size, 0] += speech
    stereo[lead : lead + speech.size, 1] += speech * _RIGHT_GAIN
    pcm = np.clip(np.round(stereo * 32768), -32768, 32767).astype("<i2")
    path = folder / f"noisy48k_{Path(clip.name).stem}.wav"
    with wave.open(str(path), "wb") as w:
        w.setnchannels(2)
        w.setsampwidth(2)
        w.setframerate(RATE)
        w.writeframes(pcm.tobytes())
    return path


async def _as_fed(path: Path) -> np.ndarray:
    """The 16 kHz mono samples a session is fed from `path` (the kit's own decoding)."""
    source = FileSource(path, trailing_silence_s=0.0)
    parts = [np.frombuffer(f.data, dtype=np.int16) async for f in source.frames()]
    return np.concatenate(parts)


async def noisy_clip(clip: Clip, folder: Path, *, seed: int = 0) -> Clip:
    """The noisy version of `clip` as a `Clip`: its file, what the session is fed, and the
    clean clip's speech frames shifted by the lead-in."""
    path = write_noisy(clip, folder, seed=seed)
    pcm = await _as_fed(path)
    lead = round(LEAD_S / FRAME_S)
    n_frames = pcm.size // int(FRAME_S * SAMPLE_RATE)
    speech = np.zeros(n_frames, dtype=bool)
    speech[lead : lead + clip.speech.size] = clip.speech[: max(0, n_frames - lead)]
    return Clip(f"noisy:{clip.name}", path, clip.reference, pcm, speech)
