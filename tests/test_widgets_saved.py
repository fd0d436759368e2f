"""An executed notebook shows the words where widgets cannot render (GitHub, nbconvert, a course
site, a notebook opened without its kernel): the views' outputs carry text/plain and text/html
renderings, and those and the saved widget state are current after a headless Run All."""

from __future__ import annotations

import json
import os
import re

import nbformat
import pytest
from nbclient import NotebookClient

from benchmarks.scoring import normalise

pytestmark = pytest.mark.notebooks

CELLS = [
    "import stt_agent\nfrom stt_agent import samples",
    # Returns at once: everything below is published by the background agent.
    "handle = await stt_agent.start_local(samples.path('austen_0880'), realtime=True, "
    "engine='local')",
    "stt_agent.StatusView(handle)",
    "view = stt_agent.TranscriptView(handle.feed)\nview",
    "finals = await handle.done()\nawait handle.stop()",
]


def _run(tmp_path) -> nbformat.NotebookNode:
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(source) for source in CELLS]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LIVEKIT_", "ASSEMBLYAI_"))}
    client = NotebookClient(
        nb,
        kernel_name="python3",
        timeout=180,
        store_widget_state=True,
        resources={"metadata": {"path": str(tmp_path)}},
    )
    client.execute(env=env)
    return nb


def test_saved_outputs_show_the_final_words_and_state(tmp_path) -> None:
    nb = _run(tmp_path)
    # Each view: the live widget, then its saved copy (hidden in JupyterLab next to the widget).
    [status_widget, status] = nb.cells[2].outputs
    [transcript_widget, transcript] = nb.cells[3].outputs
    for widget in (status_widget, transcript_widget):
        assert "application/vnd.jupyter.widget-view+json" in widget.data
    for output in (status, transcript):
        assert output.output_type == "display_data"
        assert set(output.data) == {"text/plain", "text/html"}

    plain, page = transcript.data["text/plain"], transcript.data["text/html"]
    assert "young man" in normalise(plain), plain
    assert "young man" in normalise(re.sub(r"<[^>]+>", " ", page)), page
    assert "class='stt-row'" in page and "stt-transcript-saved" in page
    assert not re.search(r"\b0 utterances", plain), plain

    assert "stopped" in status.data["text/plain"], status.data["text/plain"]
    assert "data-state='stopped'" in status.data["text/html"]

    # The widget state saved with the notebook is current too, not what it was when shown.
    state = json.dumps(nb.metadata["widgets"]["application/vnd.jupyter.widget-state+json"])
    assert "young man" in normalise(state)
    assert "data-state='stopped'" in state or 'data-state=\\"stopped\\"' in state
