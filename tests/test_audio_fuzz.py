"""Damaged audio never costs the good files: `transcribe` beside hundreds of broken recordings.

Copies of the shipped samples, hurt in the ways real files are (tests/damaged_audio.py), go
through `python -m stt_agent transcribe` in batches, each with an intact recording at a random
place among them. Whatever the damage: no traceback, no hang, exit 0 or 2, every failure one
line naming its file, every file accounted for, and the intact recording transcribed.

The seed and the number of files can be changed to search further (the issue asks for a
hand-run with another seed and 1000 files):

    STT_AGENT_FUZZ_SEED=7 STT_AGENT_FUZZ_FILES=1000 pytest tests/test_audio_fuzz.py
"""

from __future__ import annotations

import json
import os
import wave
from pathlib import Path

import numpy as np
import pytest

from benchmarks.scoring import corpus_wer
from stt_agent import samples
from tests.cli import run_cli
from tests.damaged_audio import Damaged, make_damaged

SEED = int(os.environ.get("STT_AGENT_FUZZ_SEED", "19"))
COUNT = int(os.environ.get("STT_AGENT_FUZZ_FILES", "220"))
# Files per `transcribe` command: the model loads once per command.
BATCH = 40
INTACT = "austen_0880"  # short: it is transcribed once per batch
# tiny.en on this recording: 0.0 (one word is allowed to go)
MAX_INTACT_WER = 0.15
# A hang guard for a whole batch, far above what one takes on a loaded machine.
BATCH_TIMEOUT_S = 1200


def _batches(files: list[Damaged]) -> list[list[Damaged]]:
    return [files[i : i + BATCH] for i in range(0, len(files), BATCH)]


@pytest.fixture(scope="module")
def damaged(tmp_path_factory: pytest.TempPathFactory) -> list[Damaged]:
    return make_damaged(tmp_path_factory.mktemp("damaged"), COUNT, SEED)


@pytest.mark.parametrize("batch", range(-(-COUNT // BATCH)))
def test_damaged_files_never_cost_the_intact_one(
    damaged: list[Damaged], tmp_path: Path, batch: int
) -> None:
    files = _batches(damaged)[batch]
    intact = tmp_path / f"intact_{INTACT}.flac"
    intact.write_bytes(samples.path(INTACT).read_bytes())
    paths = [str(f.path) for f in files]
    paths.insert(int(np.random.default_rng(SEED + batch).integers(len(paths) + 1)), str(intact))
    how = {str(f.path): f.how for f in files}

    result = run_cli("transcribe", "--json", *paths, timeout=BATCH_TIMEOUT_S)

    context = f"seed {SEED}, batch {batch}:\n{result.stderr[-3000:]}"
    assert "Traceback" not in result.stderr, context
    assert result.returncode in (0, 2), context
    failures: dict[str, list[str]] = {}
    for line in result.stderr.splitlines():
        if line.startswith(("Loading speech model", "Loaded speech model")):
            continue
        assert line.startswith("stt-agent: "), f"not the kit's one line: {line!r} ({context})"
        named = [p for p in paths if line.startswith(f"stt-agent: {p}: ")]
        assert named, f"a failure that names no file: {line!r} ({context})"
        failures.setdefault(named[0], []).append(line)
    for path, lines in failures.items():
        assert len(lines) == 1, f"{path} ({how.get(path)}) got {len(lines)} lines: {lines}"
    assert (result.returncode == 2) == any(
        "no speech found" not in lines[0] for lines in failures.values()
    ), context

    transcribed: dict[str, list[str]] = {}
    for line in result.stdout.splitlines():
        record = json.loads(line)
        transcribed.setdefault(record["file"], []).append(record["text"])
    # Every file has an outcome: its words, or its one line.
    for path in paths:
        assert path in transcribed or path in failures, f"{path} ({how.get(path)}): no outcome"
    assert str(intact) not in failures, context
    wer = corpus_wer([samples.info(INTACT).text], [" ".join(transcribed[str(intact)])])
    assert wer <= MAX_INTACT_WER, f"intact file: WER {wer:.2f} ({context})"


def test_files_with_next_to_no_audio_cost_nothing_else(tmp_path: Path) -> None:
    """A header with no samples, 0.05 s and 0.1 s of audio: nothing to recognise is a result
    (or that file's one line), and the recordings after them are still transcribed."""
    pcm = samples.load(INTACT)
    short = {}
    for name, n in (("header_only", 0), ("blip_50ms", 800), ("blip_100ms", 1600)):
        path = tmp_path / f"{name}.wav"
        with wave.open(str(path), "wb") as w:
            w.setnchannels(1)
            w.setsampwidth(2)
            w.setframerate(16_000)
            w.writeframes(pcm[:n].astype("<i2").tobytes())
        short[name] = str(path)
    intact = str(samples.path(INTACT))

    result = run_cli("transcribe", "--json", *short.values(), intact, timeout=BATCH_TIMEOUT_S)

    assert "Traceback" not in result.stderr and "stopped answering" not in result.stderr
    assert result.returncode == 2, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.startswith("stt-agent: ")]
    assert lines == [
        f"stt-agent: {short['header_only']}: contains no audio samples",
        f"stt-agent: {short['blip_50ms']}: no speech found",
        f"stt-agent: {short['blip_100ms']}: no speech found",
    ], result.stderr
    texts = [json.loads(line)["text"] for line in result.stdout.splitlines()]
    assert corpus_wer([samples.info(INTACT).text], [" ".join(texts)]) <= MAX_INTACT_WER, texts
