"""Audio sources for local mode: files (anything PyAV decodes), NumPy arrays, live widgets.

Every source becomes a stream of 16 kHz mono 16-bit `rtc.AudioFrame`s, which is what
`AgentSession.input.audio` consumes. Files are decoded incrementally, a chunk at a time in a
worker thread, so a one-hour recording never sits in memory whole and the kernel's event
loop keeps running while it decodes. How a session reads a source (at the recogniser's pace,
then listening to silence until the last turn is closed) is `audio_input.SourceAudioInput`.
"""

from __future__ import annotations

import asyncio
import os
import time
import wave
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, runtime_checkable

import av
import numpy as np
from livekit import rtc

from .audio_probe import implausible_format, implausible_length
from .errors import AudioSourceError
from .pacing import Pacer, with_trailing_silence

__all__ = [
    "DEFAULT_TRAILING_SILENCE_S",
    "FRAME_MS",
    "FRAME_SAMPLES",
    "SAMPLE_RATE",
    "ArraySource",
    "AudioSource",
    "AudioSourceError",
    "FileSource",
    "as_source",
    "decode_pcm",
    "probe",
    "to_frames",
]

SAMPLE_RATE = 16_000
FRAME_MS = 20
FRAME_SAMPLES = SAMPLE_RATE * FRAME_MS // 1000
# How much audio one trip to the decoding thread produces: big enough to amortise the hop,
# small enough that memory stays flat and the first frame comes quickly.
_DECODE_CHUNK_S = 0.5
# Silence appended after the last sample so the VAD sees the end of the last utterance.
DEFAULT_TRAILING_SILENCE_S = 1.0


@runtime_checkable
class AudioSource(Protocol):
    """Anything that yields 16 kHz mono frames: files, arrays, the microphone widget."""

    name: str

    def frames(self) -> AsyncIterator[rtc.AudioFrame]: ...


@dataclass(frozen=True)
class AudioInfo:
    path: Path
    codec: str
    sample_rate: int
    channels: int
    duration_s: float | None
    # What a WAV header promises; FFmpeg clamps its own duration to the bytes actually there.
    header_duration_s: float | None = None


def probe(path: str | os.PathLike[str]) -> AudioInfo:
    """Open a file just far enough to know it is plausible audio; raise `AudioSourceError`
    otherwise (one that names the file and what is wrong with it)."""
    p = Path(path)
    name = str(path)
    if not p.exists():
        raise AudioSourceError(name, "no such file")
    if p.is_dir():
        raise AudioSourceError(name, "is a folder, not an audio file")
    size = p.stat().st_size
    if size == 0:
        raise AudioSourceError(name, "the file is empty")
    try:
        info = _open_info(p, name)
    except AudioSourceError:
        raise
    except Exception as e:  # FFmpeg's errors, and whatever else a damaged file makes PyAV raise
        raise AudioSourceError(name, f"not a readable audio file ({_reason(e)})") from None
    problem = implausible_format(info.sample_rate, info.channels) or implausible_length(
        info.duration_s, size
    )
    if problem:
        raise AudioSourceError(name, problem)
    return info


def _open(path: Path) -> av.container.InputContainer:
    # Damaged tags (not UTF-8) must not cost the audio: the kit never reads them.
    return av.open(str(path), metadata_errors="replace")


def _open_info(p: Path, name: str) -> AudioInfo:
    with _open(p) as container:
        if not container.streams.audio:
            raise AudioSourceError(name, "has no audio stream")
        stream = container.streams.audio[0]
        # None when FFmpeg has no decoder for what the header describes (65535 bits per sample)
        codec = stream.codec_context
        if codec is None or not codec.name:
            raise AudioSourceError(
                name,
                "not a readable audio file (its header describes audio no decoder knows: "
                "the file is damaged or in a format FFmpeg does not support)",
            )
        duration = None
        if stream.duration is not None and stream.time_base is not None:
            duration = float(stream.duration * stream.time_base)
        elif container.duration is not None:
            duration = container.duration / av.time_base
        return AudioInfo(
            path=p,
            codec=codec.name,
            sample_rate=codec.sample_rate,
            channels=codec.channels,
            duration_s=duration,
            header_duration_s=_wav_header_duration(p),
        )


def _wav_header_duration(path: Path) -> float | None:
    """Seconds of audio a PCM WAV header declares, or None when unknown or unreadable.

    FFmpeg reports what it finds in a truncated file, so the header's own promise is read
    separately to tell a cut-off recording from a complete one.
    """
    try:
        with wave.open(str(path), "rb") as w:
            frames, rate, frame_bytes = w.getnframes(), w.getframerate(), w.getsampwidth()
            frame_bytes *= w.getnchannels()
    except (wave.Error, EOFError, OSError, ValueError, ArithmeticError):
        # float, extensible or RF64 WAVs, or a header `wave` cannot make sense of: FFmpeg's
        # own duration stands
        return None
    # 0 and 0xFFFFFFFF bytes are what streaming writers declare when the size is unknown.
    if not frames or not rate or frames * frame_bytes >= 0xFFFFFFFF - frame_bytes:
        return None
    return frames / rate


def _reason(e: Exception) -> str:
    """FFmpeg's own words when it was FFmpeg, else the exception's kind: one short phrase."""
    if isinstance(e, av.FFmpegError):
        return (getattr(e, "strerror", None) or str(e)).rstrip(".").lower()
    text = " ".join(str(e).split())[:120]
    return f"{type(e).__name__}: {text}" if text else type(e).__name__


def decode_pcm(path: Path, info: AudioInfo) -> Iterator[np.ndarray]:
    """int16 mono 16 kHz chunks of about `_DECODE_CHUNK_S` seconds, streamed from the file.

    Whatever goes wrong mid-file (FFmpeg's errors, a frame whose rate or channels no
    recording has, more audio than the bytes can hold) is an `AudioSourceError` naming the
    file and how far decoding got; what came before it has been yielded."""
    decoded_n = 0
    try:
        for chunk in _decode_chunks(path):
            decoded_n += chunk.size
            yield chunk
    except AudioSourceError as e:
        raise AudioSourceError(
            str(path), f"decoding failed after {decoded_n / SAMPLE_RATE:.1f} s ({e.problem})"
        ) from None
    except Exception as e:  # a damaged file can make PyAV raise anything
        raise AudioSourceError(
            str(path), f"decoding failed after {decoded_n / SAMPLE_RATE:.1f} s ({_reason(e)})"
        ) from None
    if decoded_n == 0:
        raise AudioSourceError(str(path), "contains no audio samples")
    # A cut-off download or copy decodes "successfully" but shorter than its header says.
    promised = max(info.duration_s or 0.0, info.header_duration_s or 0.0)
    if promised and decoded_n / SAMPLE_RATE < promised * 0.98 - 0.1:
        raise AudioSourceError(
            str(path),
            f"the file is truncated: its header promises {promised:.1f} s "
            f"but only {decoded_n / SAMPLE_RATE:.1f} s of audio is there",
        )


def _decode_chunks(path: Path) -> Iterator[np.ndarray]:
    resampler = av.AudioResampler(format="s16", layout="mono", rate=SAMPLE_RATE)
    target = int(_DECODE_CHUNK_S * SAMPLE_RATE)
    size = path.stat().st_size
    pending: list[np.ndarray] = []
    pending_n = 0
    decoded_n = 0
    with _open(path) as container:
        stream = container.streams.audio[0]
        for packet in container.demux(stream):
            for frame in packet.decode():
                # Each frame carries its own format; a damaged one can claim anything.
                problem = implausible_format(
                    frame.sample_rate, frame.layout.nb_channels, who="a frame"
                )
                if problem:
                    raise AudioSourceError(str(path), problem)
                for out in resampler.resample(frame):
                    pcm = out.to_ndarray().reshape(-1)
                    pending.append(pcm)
                    pending_n += pcm.size
                if pending_n >= target:
                    chunk = np.concatenate(pending)
                    decoded_n += chunk.size
                    pending, pending_n = [], 0
                    problem = implausible_length(
                        decoded_n / SAMPLE_RATE, size, who="its decoded stream"
                    )
                    if problem:
                        raise AudioSourceError(str(path), problem)
                    yield chunk
        for out in resampler.resample(None):
            pending.append(out.to_ndarray().reshape(-1))
    if pending:
        yield np.concatenate(pending)


def to_frames(pcm: np.ndarray, carry: np.ndarray) -> tuple[list[rtc.AudioFrame], np.ndarray]:
    """Cut int16 samples into 20 ms frames; the remainder is carried to the next call."""
    data = np.concatenate([carry, pcm]) if carry.size else pcm
    n_full = data.size // FRAME_SAMPLES
    frames = [
        rtc.AudioFrame(
            data=data[i * FRAME_SAMPLES : (i + 1) * FRAME_SAMPLES].tobytes(),
            sample_rate=SAMPLE_RATE,
            num_channels=1,
            samples_per_channel=FRAME_SAMPLES,
        )
        for i in range(n_full)
    ]
    return frames, data[n_full * FRAME_SAMPLES :]


class _PacedSource:
    """Shared pacing and trailing-silence logic for sources that produce int16 chunks."""

    name: str

    def __init__(self, *, realtime: bool, trailing_silence_s: float) -> None:
        self.trailing_silence_s = trailing_silence_s
        self.samples_sent = 0
        self.finished = False
        # On the wall clock: latencies are measured against it.
        self._pacer = Pacer(realtime=realtime, clock=time.time)

    @property
    def realtime(self) -> bool:
        """Paced as it would be spoken; a local run turns it on for streaming services."""
        return self._pacer.realtime

    @realtime.setter
    def realtime(self, value: bool) -> None:
        self._pacer.realtime = value

    @property
    def first_frame_at(self) -> float | None:
        """Wall-clock time of the first frame; lets latency use audio time."""
        return self._pacer.start

    async def _chunks(self) -> AsyncIterator[np.ndarray]:
        raise NotImplementedError
        yield  # pragma: no cover

    def wall_time_of(self, audio_s: float) -> float | None:
        """Wall-clock time at which the sample at `audio_s` was handed on (real time only)."""
        return self._pacer.wall_time_of(audio_s)

    async def frames(self) -> AsyncIterator[rtc.AudioFrame]:
        carry = np.zeros(0, dtype=np.int16)
        chunks = with_trailing_silence(
            self._chunks(),
            self.trailing_silence_s,
            sample_rate=SAMPLE_RATE,
            frame_samples=FRAME_SAMPLES,
        )
        async for chunk in chunks:
            frames, carry = to_frames(chunk, carry)
            for frame in frames:
                # Each frame at its own time, as a microphone would (`realtime`).
                await self._pacer.wait(self.samples_sent / SAMPLE_RATE)
                self.samples_sent += frame.samples_per_channel
                yield frame
        self.finished = True


class FileSource(_PacedSource):
    """Any file PyAV decodes, at any rate and channel count, streamed as 16 kHz mono."""

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        realtime: bool = False,
        trailing_silence_s: float = DEFAULT_TRAILING_SILENCE_S,
    ) -> None:
        super().__init__(realtime=realtime, trailing_silence_s=trailing_silence_s)
        self.path = Path(path)
        self.name = str(path)
        self.info = probe(path)  # fail at construction, before any session starts

    async def _chunks(self) -> AsyncIterator[np.ndarray]:
        decoder = decode_pcm(self.path, self.info)
        while True:
            chunk = await asyncio.to_thread(next, decoder, None)  # None: the file is done
            if chunk is None:
                return
            yield chunk

    def __repr__(self) -> str:
        return f"FileSource({self.name!r}, realtime={self.realtime})"


class ArraySource(_PacedSource):
    """A NumPy array of samples (float in [-1, 1] or int16), mono or (n, channels)."""

    def __init__(
        self,
        samples: np.ndarray,
        sample_rate: int = SAMPLE_RATE,
        *,
        name: str = "array",
        realtime: bool = False,
        trailing_silence_s: float = DEFAULT_TRAILING_SILENCE_S,
    ) -> None:
        super().__init__(realtime=realtime, trailing_silence_s=trailing_silence_s)
        self.name = name
        self._pcm = _array_to_pcm16(np.asarray(samples), sample_rate, name)

    async def _chunks(self) -> AsyncIterator[np.ndarray]:
        step = int(_DECODE_CHUNK_S * SAMPLE_RATE)
        for i in range(0, self._pcm.size, step):
            yield self._pcm[i : i + step]

    def __repr__(self) -> str:
        return f"ArraySource({self.name!r}, {self._pcm.size / SAMPLE_RATE:.1f} s)"


def _array_to_pcm16(samples: np.ndarray, sample_rate: int, name: str) -> np.ndarray:
    if samples.size == 0:
        raise AudioSourceError(name, "the array is empty")
    if samples.ndim not in (1, 2):
        raise AudioSourceError(name, f"expected a 1-D or 2-D array, got shape {samples.shape}")
    # Scale before mixing down: the mean of int16 channels is float and would pass as [-1, 1].
    if np.issubdtype(samples.dtype, np.floating):
        floats = np.clip(samples.astype(np.float32), -1.0, 1.0)
    elif samples.dtype == np.int16:
        floats = samples.astype(np.float32) / 32768.0
    else:
        raise AudioSourceError(name, f"expected float or int16 samples, got {samples.dtype}")
    if floats.ndim == 2:
        # (n, channels) is the soundfile/PyAV-planar-transposed convention; accept both.
        floats = floats.mean(axis=1 if floats.shape[0] >= floats.shape[1] else 0)
    if sample_rate != SAMPLE_RATE:
        floats = _resample(floats, sample_rate)
    return (floats * 32767.0).astype(np.int16)


def _resample(floats: np.ndarray, sample_rate: int) -> np.ndarray:
    """Resample with FFmpeg's resampler (via PyAV) rather than a hand-rolled filter."""
    frame = av.AudioFrame.from_ndarray(floats.reshape(1, -1), format="flt", layout="mono")
    frame.sample_rate = sample_rate
    resampler = av.AudioResampler(format="flt", layout="mono", rate=SAMPLE_RATE)
    out = [f.to_ndarray().reshape(-1) for f in resampler.resample(frame)]
    out += [f.to_ndarray().reshape(-1) for f in resampler.resample(None)]
    return np.concatenate(out) if out else np.zeros(0, np.float32)


def as_source(
    source: object, *, realtime: bool = False, sample_rate: int = SAMPLE_RATE
) -> AudioSource:
    """Turn a path, an array or an existing source into an `AudioSource`."""
    if isinstance(source, AudioSource):
        return source
    if isinstance(source, str | os.PathLike):
        return FileSource(source, realtime=realtime)
    if isinstance(source, np.ndarray):
        return ArraySource(source, sample_rate, realtime=realtime)
    raise TypeError(
        f"cannot use {type(source).__name__} as audio: pass a file path, a NumPy array, "
        "or a MicWidget"
    )
