"""The microphone widget in a real browser: JupyterLab in headless Chromium, a fake microphone
playing a recording, and the words of that recording in the TranscriptView."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import pytest

pytest.register_assert_rewrite("tests.browser")  # it is a plugin too (below)
from tests.browser import (  # noqa: E402
    fake_microphone_args,
    open_notebook,
    run_all,
    wait_for_kernel_idle,
    wait_for_text,
)

pytest_plugins = ["tests.browser"]

SPEECH = Path(__file__).resolve().parents[1].parent / "shared" / "speech"
RECORDING = SPEECH / "jfk_inaugural_1961.wav"

CELLS = [
    "import stt_agent",
    "from stt_agent.mic import MicWidget",
    "mic = MicWidget(autostart=True)\nmic",
    "handle = await stt_agent.start_local(mic)",
    "stt_agent.TranscriptView(handle.feed)",
]


@pytest.fixture
def fake_mic_wav(tmp_path: Path) -> Path:
    if not RECORDING.is_file():
        pytest.fail(f"test recording not found at {RECORDING} (clone with shared/ beside it)")
    wav = tmp_path / "fake-mic.wav"
    shutil.copy(RECORDING, wav)
    return wav


@pytest.fixture
def chromium_args(fake_mic_wav: Path) -> list[str]:
    return fake_microphone_args(fake_mic_wav)


@pytest.mark.browser
def test_microphone_widget_transcribes_in_jupyterlab(lab, lab_page, save_screenshot):
    started = time.monotonic()
    lab.write_notebook("mic_check.ipynb", CELLS)
    open_notebook(lab_page, "mic_check.ipynb")
    wait_for_kernel_idle(lab_page)
    run_all(lab_page)
    wait_for_text(lab_page, ".stt-mic", "recording", timeout=60)
    text = wait_for_text(lab_page, ".stt-row", "fellow americans", timeout=90)
    shot = save_screenshot(lab_page, "mic_transcript")
    print(f"transcribed in {time.monotonic() - started:.1f} s: {text!r}; screenshot {shot}")
