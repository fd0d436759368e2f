"""Damaged copies of the shipped recordings, made from a seed: what a learner's disk can hold.

Each copy is one of the kit's samples (as WAV, FLAC, MP3 or Ogg/Opus) hurt in one or two of the
ways real files are: cut off (also to a few bytes, or to a header and a tenth of a second),
header and body bytes flipped, header fields no recording has (65535 bits per sample, a 1 Hz
sample rate, 0 or 65535 channels, a data size of 4 GB), garbage or a second file spliced in,
and the wrong extension. Used by tests/test_audio_fuzz.py; `make_damaged` is deterministic for
a seed, so a failure can be reproduced from its seed and index.
"""

from __future__ import annotations

import io
import struct
import wave
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np

from stt_agent import samples

__all__ = ["Damaged", "make_damaged", "originals"]

# Short recordings keep the suite quick: the damaged copies that still decode get transcribed.
SOURCE_SAMPLES = ("austen_0880", "austen_0930", "jfk")
CLIP_S = 4.0
AUDIO_SUFFIXES = (".wav", ".flac", ".mp3", ".ogg", ".m4a", ".opus", ".aac", ".webm", "")
_WAV_HEADER = 44  # what `wave` writes: RIFF, fmt (16 bytes of fields), data


@dataclass(frozen=True)
class Original:
    name: str
    kind: str  # wav, flac, mp3 or ogg
    data: bytes


@dataclass(frozen=True)
class Damaged:
    path: Path
    how: str  # what was done to it, for a failing test's message


def originals() -> list[Original]:
    """Each source sample (its first `CLIP_S` seconds) in the four containers."""
    out = []
    for name in SOURCE_SAMPLES:
        pcm = samples.load(name)[: int(CLIP_S * 16_000)]
        out.append(Original(name, "wav", _wav(pcm)))
        for kind, codec in (("flac", "flac"), ("mp3", "libmp3lame"), ("ogg", "libopus")):
            out.append(Original(name, kind, _encode(pcm, kind, codec)))
    return out


def _wav(pcm: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(16_000)
        w.writeframes(pcm.astype("<i2").tobytes())
    return buffer.getvalue()


def _encode(pcm: np.ndarray, container: str, codec: str) -> bytes:
    buffer = io.BytesIO()
    rate = 48_000 if codec == "libopus" else 16_000
    with av.open(buffer, "w", format=container) as out:
        stream = out.add_stream(codec, rate=rate, layout="mono")
        frame = av.AudioFrame.from_ndarray(pcm.reshape(1, -1), format="s16", layout="mono")
        frame.sample_rate = 16_000
        resampler = av.AudioResampler(format=stream.codec_context.format, layout="mono", rate=rate)
        for resampled in [*resampler.resample(frame), *resampler.resample(None)]:
            out.mux(stream.encode(resampled))
        out.mux(stream.encode(None))
    return buffer.getvalue()


# --- ways to hurt a file ------------------------------------------------------------------


Damage = Callable[[np.random.Generator, bytes, Original, list[Original]], tuple[bytes, str]]


def _truncate_to_bytes(rng: np.random.Generator, data: bytes, *_: object) -> tuple[bytes, str]:
    n = int(rng.integers(1, 200))
    return data[:n], f"cut to {n} bytes"


def _truncate_short(rng: np.random.Generator, data: bytes, *_: object) -> tuple[bytes, str]:
    # A header and a sliver of audio: for 16 kHz 16-bit WAV, 0 to ~0.15 s.
    n = _WAV_HEADER + int(rng.integers(0, 5000))
    return data[:n], f"cut to {n} bytes (a header and a sliver)"


def _truncate(rng: np.random.Generator, data: bytes, *_: object) -> tuple[bytes, str]:
    fraction = float(rng.uniform(0.05, 0.95))
    return data[: int(len(data) * fraction)], f"cut to {fraction:.0%}"


def _flip(rng: np.random.Generator, data: bytes, lo: int, hi: int, n: int) -> bytes:
    out = bytearray(data)
    hi = min(hi, len(out))
    if hi <= lo:
        return bytes(out)
    for at in rng.integers(lo, hi, size=n):
        out[at] ^= int(rng.integers(1, 256))
    return bytes(out)


def _header_flip(rng: np.random.Generator, data: bytes, *_: object) -> tuple[bytes, str]:
    n = int(rng.integers(1, 7))
    return _flip(rng, data, 0, 64, n), f"{n} header bytes flipped"


def _body_flip(rng: np.random.Generator, data: bytes, *_: object) -> tuple[bytes, str]:
    n = int(rng.integers(1, 60))
    return _flip(rng, data, 64, len(data), n), f"{n} body bytes flipped"


# (offset, struct format, absurd values) of the 44-byte WAV header's fields
_WAV_FIELDS = {
    "riff size": (4, "<I", (0, 12, 0xFFFFFFFF)),
    "format tag": (20, "<H", (0, 2, 3, 0x55, 0xFFFE, 0xFFFF)),
    "channels": (22, "<H", (0, 3, 255, 65535)),
    "sample rate": (24, "<I", (0, 1, 7, 2_000_000, 0xFFFFFFFF)),
    "byte rate": (28, "<I", (0, 1, 0xFFFFFFFF)),
    "block align": (32, "<H", (0, 1, 3, 65535)),
    "bits per sample": (34, "<H", (0, 1, 4, 12, 24, 32, 64, 65535)),
    "data size": (40, "<I", (0, 1, 0x7FFFFFFF, 0xFFFFFFFF)),
}


def _wav_field(
    rng: np.random.Generator, data: bytes, original: Original, *_: object
) -> tuple[bytes, str]:
    if original.kind != "wav":
        return _flac_field(rng, data, original)
    field = list(_WAV_FIELDS)[int(rng.integers(len(_WAV_FIELDS)))]
    offset, fmt, values = _WAV_FIELDS[field]
    value = values[int(rng.integers(len(values)))]
    out = bytearray(data)
    out[offset : offset + struct.calcsize(fmt)] = struct.pack(fmt, value)
    return bytes(out), f"WAV {field} set to {value}"


def _flac_field(
    rng: np.random.Generator, data: bytes, original: Original, *_: object
) -> tuple[bytes, str]:
    """STREAMINFO (bytes 18-25 of a FLAC file): 20 bits of rate, 3 of channels - 1, 5 of bits
    per sample - 1, 36 of total samples. Other containers get header bytes flipped."""
    if original.kind != "flac":
        return _header_flip(rng, data)
    packed = int.from_bytes(data[18:26], "big")
    rate, rest = packed >> 44, packed & ((1 << 44) - 1)
    choice = int(rng.integers(4))
    if choice == 0:
        rate = int(rng.choice([0, 1, 7, 0xFFFFF]))
        how = f"FLAC sample rate set to {rate}"
    elif choice == 1:
        rest |= (1 << 36) - 1
        how = "FLAC total samples set to 2^36 - 1"
    elif choice == 2:
        rest ^= 0x1F << 36
        how = "FLAC bits per sample flipped"
    else:
        rest ^= 0x7 << 41
        how = "FLAC channels flipped"
    out = bytearray(data)
    out[18:26] = ((rate << 44) | rest).to_bytes(8, "big")
    return bytes(out), how


def _splice_garbage(rng: np.random.Generator, data: bytes, *_: object) -> tuple[bytes, str]:
    at = int(rng.integers(0, len(data)))
    garbage = rng.bytes(int(rng.integers(1, 4096)))
    if rng.random() < 0.5:
        return data[:at] + garbage + data[at:], f"{len(garbage)} garbage bytes inserted at {at}"
    return data[:at] + garbage + data[at + len(garbage) :], f"{len(garbage)} bytes overwritten"


def _splice_file(
    rng: np.random.Generator, data: bytes, _original: Original, pool: list[Original]
) -> tuple[bytes, str]:
    other = pool[int(rng.integers(len(pool)))]
    at = int(rng.integers(0, len(data)))
    return data[:at] + other.data + data[at:], f"a {other.kind} file spliced in at {at}"


def _noise(rng: np.random.Generator, data: bytes, *_: object) -> tuple[bytes, str]:
    n = int(rng.integers(1, 50_000))
    if rng.random() < 0.5:
        return rng.bytes(n), f"{n} random bytes"
    return bytes(n), f"{n} zero bytes"


_DAMAGES: tuple[Damage, ...] = (
    _truncate_to_bytes,
    _truncate_short,
    _truncate,
    _header_flip,
    _body_flip,
    _wav_field,
    _wav_field,  # twice: absurd fields are what crashed the CLI
    _flac_field,
    _splice_garbage,
    _splice_file,
    _noise,
)


def make_damaged(folder: Path, count: int, seed: int) -> list[Damaged]:
    """`count` damaged files in `folder`, the same ones for the same seed."""
    rng = np.random.default_rng(seed)
    pool = originals()
    out = []
    for i in range(count):
        original = pool[int(rng.integers(len(pool)))]
        data, hows = original.data, [f"{original.name}.{original.kind}"]
        for _ in range(int(rng.integers(1, 3))):  # one or two kinds of damage
            damage = _DAMAGES[int(rng.integers(len(_DAMAGES)))]
            data, how = damage(rng, data, original, pool)
            hows.append(how)
        suffix = f".{original.kind}"
        if rng.random() < 0.2:
            suffix = AUDIO_SUFFIXES[int(rng.integers(len(AUDIO_SUFFIXES)))]
            hows.append(f"named {suffix or 'without an extension'}")
        path = folder / f"damaged_{i:04d}{suffix}"
        path.write_bytes(data)
        out.append(Damaged(path, ", ".join(hows)))
    return out
