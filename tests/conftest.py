"""Shared fixtures: the real recordings and the loaded local engine."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # `benchmarks.scoring` is shared with the benchmarks

from benchmarks.scoring import SPEECH_DIR, references  # noqa: E402


@pytest.fixture(scope="session")
def speech_dir() -> Path:
    if not (SPEECH_DIR / "transcripts.tsv").is_file():
        pytest.fail(f"test recordings not found at {SPEECH_DIR} (clone with shared/ beside it)")
    return SPEECH_DIR


@pytest.fixture(scope="session")
def reference_texts(speech_dir: Path) -> dict[str, str]:
    return references(speech_dir)


@pytest.fixture(scope="session")
def jfk(speech_dir: Path) -> Path:
    return speech_dir / "jfk_inaugural_1961.wav"


@pytest.fixture(scope="session")
def local_stt():
    """One LocalSTT with its model loaded, shared by the tests of a session."""
    from stt_agent.engines import LocalSTT

    engine = LocalSTT()
    engine.prewarm()
    return engine
