"""The scored recordings the benchmarks run on, found the same way on every clone.

The team's larger set, `../shared/speech/` (ten clips and `transcripts.tsv`), when it is beside
the clone, as in our CI. Otherwise the kit's shipped samples: nine of those ten clips,
re-encoded losslessly in `stt_agent.samples` (`tools/make_samples.py`). They are written out
once as 16 kHz WAVs under the same file names, with their reference texts, so `make bench`
runs anywhere. Only `cmu_goforward.wav` is missing then, and it is used by the tests alone.
"""

from __future__ import annotations

import functools
import os
import tempfile
import wave
from pathlib import Path

from stt_agent import samples
from tools.make_samples import CLIPS

SHARED_DIR = Path(__file__).resolve().parents[1].parent / "shared" / "speech"
SHIPPED_DIR = Path(tempfile.gettempdir()) / "stt-agent-benchmark-speech"
TRANSCRIPTS = "transcripts.tsv"


@functools.cache
def speech_dir() -> Path:
    """The folder of 16 kHz mono WAVs and `transcripts.tsv` to benchmark on."""
    if (SHARED_DIR / TRANSCRIPTS).is_file():
        return SHARED_DIR
    return write_shipped(SHIPPED_DIR)


def write_shipped(folder: Path) -> Path:
    """The shipped samples as 16 kHz WAVs with the shared set's names, and their references."""
    folder.mkdir(parents=True, exist_ok=True)
    for name, wav_name in CLIPS.items():
        target = folder / wav_name
        if target.is_file():
            continue
        partial = target.with_suffix(".partial")  # a run cut short never leaves half a file
        with wave.open(str(partial), "wb") as w:
            w.setnchannels(1)
            w.setsampwidth(2)
            w.setframerate(16_000)
            w.writeframes(samples.load(name).tobytes())
        os.replace(partial, target)
    rows = "".join(f"{wav_name}\t{samples.info(name).text}\n" for name, wav_name in CLIPS.items())
    (folder / TRANSCRIPTS).write_text(rows, encoding="utf-8")
    return folder
