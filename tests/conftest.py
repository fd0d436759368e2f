"""Shared fixtures: the real recordings and the loaded local engine.

The recordings are the kit's shipped samples (`stt_agent.samples`), so the suite runs on any
clone. The larger scored set in ../shared/speech (ten clips with reference transcripts) adds
tests when it is beside the clone; tests that need it skip cleanly when it is not.
"""

from __future__ import annotations

import sys
import wave
from collections.abc import Callable
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # `benchmarks.scoring` is shared with the benchmarks

from benchmarks.scoring import references  # noqa: E402
from benchmarks.speech import SHARED_DIR  # noqa: E402
from stt_agent import samples  # noqa: E402
from tests import netns  # noqa: E402
from tests.notebook_runs import NoSettingsRuns  # noqa: E402

# WebRTC media (livekit.rtc, Chromium) goes out on every non-loopback interface: these tests run
# only inside the network namespace `python -m tests.netns` makes (`make test` does), never
# through this machine's own address.
MEDIA_MARKERS = ("room_media", "browser_media")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if netns.inside():
        return
    skip = pytest.mark.skip(
        reason="WebRTC media runs only in a network namespace: python -m tests.netns -- pytest ..."
    )
    for item in items:
        if any(item.get_closest_marker(name) for name in MEDIA_MARKERS):
            item.add_marker(skip)


@pytest.fixture(scope="session")
def speech_dir() -> Path:
    """The larger scored set, ../shared/speech; skips the test when it is not there."""
    if not (SHARED_DIR / "transcripts.tsv").is_file():
        pytest.skip(f"the larger scored set is not at {SHARED_DIR} (only in our CI checkout)")
    return SHARED_DIR


@pytest.fixture(scope="session")
def reference_texts(speech_dir: Path) -> dict[str, str]:
    return references(speech_dir)


@pytest.fixture(scope="session")
def jfk() -> Path:
    """The shipped JFK sample (FLAC, 11 s, four utterances)."""
    return samples.path("jfk")


@pytest.fixture(scope="session")
def sample_wav(tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], Path]:
    """`sample_wav(name)`: a shipped sample as 16 kHz mono 16-bit WAV, for tests about WAV
    files and for Chromium's fake microphone (which reads only WAV)."""
    folder = tmp_path_factory.mktemp("sample-wavs")

    def make(name: str) -> Path:
        path = folder / f"{name}.wav"
        if not path.exists():
            with wave.open(str(path), "wb") as w:
                w.setnchannels(1)
                w.setsampwidth(2)
                w.setframerate(16_000)
                w.writeframes(samples.load(name).astype("<i2").tobytes())
        return path

    return make


@pytest.fixture(scope="session")
def local_stt():
    """One LocalSTT with its model loaded, shared by the tests of a session."""
    from stt_agent.engines import LocalSTT

    engine = LocalSTT()
    engine.prewarm()
    return engine


@pytest.fixture(scope="session")
def no_settings_runs(tmp_path_factory: pytest.TempPathFactory) -> NoSettingsRuns:
    """`no_settings_runs(notebook)`: that notebook executed with no settings, once a session
    (its promises are checked in tests/test_notebooks.py; tests/test_site.py renders it)."""
    return NoSettingsRuns(tmp_path_factory.mktemp("no-settings"))
