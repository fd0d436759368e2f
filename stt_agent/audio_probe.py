"""Could a recording really say this? Plausibility rules for what an audio file's header claims.

FFmpeg opens a damaged header without complaint and believes it: a WAV that claims 1 Hz turns
350 KB into 49 hours of "audio", one that claims 0 or 65535 channels has no layout to mix down,
one that claims 65535 bits per sample has no decoder at all. The run would then resample garbage
for hours or fail deep inside PyAV. These rules refuse such a file up front (and a frame that
makes the same claims mid-file), with a sentence that says what is wrong with it.
"""

from __future__ import annotations

__all__ = [
    "MAX_CHANNELS",
    "MAX_SAMPLE_RATE",
    "MIN_BYTES_PER_S",
    "MIN_SAMPLE_RATE",
    "implausible_format",
    "implausible_length",
]

# Telephone speech is 8 kHz; nothing below 4 kHz carries intelligible speech. The top is the
# highest rate any studio format uses (DXD and 768 kHz DSD-to-PCM).
MIN_SAMPLE_RATE = 4_000
MAX_SAMPLE_RATE = 768_000
# Third-order ambisonics has 16 channels and cinema formats up to 64; more is a broken header.
MAX_CHANNELS = 64
# The leanest speech codecs need about 700 bit/s (codec2): audio that claims fewer bytes per
# second than this (a quarter of that) is a header lying about its rate or length.
MIN_BYTES_PER_S = 20


def implausible_format(
    sample_rate: int | None, channels: int | None, *, who: str = "its header"
) -> str | None:
    """What is wrong with a sample rate / channel count no recording has, or None; `who`
    made the claim (the header, or a frame met while decoding)."""
    if not sample_rate or not MIN_SAMPLE_RATE <= sample_rate <= MAX_SAMPLE_RATE:
        return (
            f"{who} claims a sample rate of {sample_rate or 0} Hz, which no recording has "
            f"({MIN_SAMPLE_RATE}-{MAX_SAMPLE_RATE} Hz): the file is damaged"
        )
    if not channels or not 1 <= channels <= MAX_CHANNELS:
        return (
            f"{who} claims {channels or 0} audio channels, which no recording has "
            f"(1-{MAX_CHANNELS}): the file is damaged"
        )
    return None


def implausible_length(
    duration_s: float | None, size_bytes: int, *, who: str = "its header"
) -> str | None:
    """What is wrong with `duration_s` of audio in a file of `size_bytes`, or None.

    An unknown duration is fine (streams and some containers do not say); one that the
    file's bytes cannot possibly hold is a header error."""
    if duration_s is None:
        return None
    if duration_s != duration_s or duration_s < 0:  # NaN or negative
        return f"{who} claims a negative or undefined length: the file is damaged"
    if duration_s > 1 and size_bytes / duration_s < MIN_BYTES_PER_S:
        return (
            f"{who} claims {_span(duration_s)} of audio in {_size(size_bytes)}, more than "
            "those bytes can hold: the file is damaged"
        )
    return None


def _span(seconds: float) -> str:
    if seconds >= 3600:
        return f"{seconds / 3600:.0f} hours"
    if seconds >= 60:
        return f"{seconds / 60:.0f} minutes"
    return f"{seconds:.1f} s"


def _size(size_bytes: int) -> str:
    if size_bytes >= 1_000_000:
        return f"{size_bytes / 1_000_000:.1f} MB"
    if size_bytes >= 1000:
        return f"{size_bytes / 1000:.0f} KB"
    return f"{size_bytes} bytes"
