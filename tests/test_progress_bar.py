"""Long work shows progress: a widget under the cell in a notebook, a bar on a terminal."""

from __future__ import annotations

import os
import wave
from pathlib import Path

import nbformat
import numpy as np
import pytest
from nbclient import NotebookClient

from stt_agent import samples
from tests.cli import run_cli
from tests.notebook_runs import KERNEL

pytestmark = pytest.mark.notebooks


def _long_recording(path: Path, repeats: int) -> Path:
    """The JFK sample `repeats` times with pauses: over a minute of real speech."""
    speech = samples.load("jfk")
    pause = np.zeros(16_000, np.int16)
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(16_000)
        w.writeframes(np.concatenate([speech, pause] * repeats).tobytes())
    return path


def test_a_file_over_a_minute_shows_a_progress_widget_in_a_notebook(tmp_path):
    recording = _long_recording(tmp_path / "long.wav", repeats=6)  # 72 s
    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_code_cell(
            "import stt_agent\n"
            f"utterances = await stt_agent.transcribe_file({str(recording)!r})\n"
            "print(len(utterances), 'utterances')"
        )
    ]
    client = NotebookClient(nb, kernel_name=KERNEL, timeout=300, store_widget_state=True)
    client.execute(env={k: v for k, v in os.environ.items() if not k.startswith("LIVEKIT_")})
    outputs = nb.cells[0].outputs
    widgets = [
        o for o in outputs if "application/vnd.jupyter.widget-view+json" in o.get("data", {})
    ]
    assert widgets, outputs  # tqdm's notebook bar, an ipywidgets HBox
    bar_text = " ".join(o["data"].get("text/plain", "") for o in widgets)
    assert "long.wav" in bar_text and "s of audio" in bar_text, bar_text
    printed = "".join(o.get("text", "") for o in outputs if o.get("name") == "stdout")
    assert int(printed.split()[0]) >= 12, printed  # four utterances per repeat, most of them


def test_the_cli_shows_a_bar_only_on_a_terminal(tmp_path):
    recording = _long_recording(tmp_path / "short.wav", repeats=1)
    piped = run_cli("transcribe", str(recording))
    assert piped.returncode == 0 and "s of audio" not in piped.stderr  # stderr is a pipe here
