"""Re-create the shipped samples (stt_agent/samples/*.flac) from the 16 kHz WAV clips.

    python tools/make_samples.py SOURCE_DIR

SOURCE_DIR holds the WAV files named below (in our development setup, the speech clips
described in their SOURCES.md). Each is re-encoded losslessly as FLAC with PyAV: the samples
decode to exactly the same 16-bit PCM as the WAV files. Only public-domain and CC BY clips
are shipped; see stt_agent/samples/README.md for their sources and attribution.
"""

from __future__ import annotations

import sys
from pathlib import Path

import av

# shipped name -> source WAV file
CLIPS = {
    "jfk": "jfk_inaugural_1961.wav",
    "austen_0870": "librivox_sense_sensibility_0870.wav",
    "austen_0880": "librivox_sense_sensibility_0880.wav",
    "austen_0890": "librivox_sense_sensibility_0890.wav",
    "austen_0920": "librivox_sense_sensibility_0920.wav",
    "austen_0930": "librivox_sense_sensibility_0930.wav",
    "librispeech_2412": "librispeech_dev_2412-153948-0000.wav",
    "librispeech_1272": "librispeech_dev_1272-141231-0002.wav",
    "ljspeech": "ljspeech_LJ050-0131.wav",
}
TARGET = Path(__file__).resolve().parents[1] / "stt_agent" / "samples"


def to_flac(source: Path, target: Path) -> None:
    with av.open(str(source)) as wav, av.open(str(target), "w", format="flac") as flac:
        stream = flac.add_stream("flac", rate=16_000, layout="mono")
        stream.options = {"compression_level": "12"}  # smallest; decoding cost is the same
        for frame in wav.decode(audio=0):
            frame.pts = None
            for packet in stream.encode(frame):
                flac.mux(packet)
        for packet in stream.encode(None):
            flac.mux(packet)


def main(argv: list[str]) -> int:
    if len(argv) != 1 or not Path(argv[0]).is_dir():
        print("usage: python tools/make_samples.py SOURCE_DIR", file=sys.stderr)
        return 2
    source_dir = Path(argv[0])
    for name, wav in CLIPS.items():
        to_flac(source_dir / wav, TARGET / f"{name}.flac")
        print(f"{name}.flac  {(TARGET / f'{name}.flac').stat().st_size:>7} bytes  <- {wav}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
