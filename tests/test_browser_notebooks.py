"""The committed notebook 03 in a real JupyterLab, in headless Chromium: Run All, then the
recording's words must appear in the TranscriptView on the page."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

pytest.register_assert_rewrite("tests.browser")  # it is a plugin too (below)
from tests.browser import open_notebook, run_all, wait_for_kernel_idle, wait_for_text  # noqa: E402

pytest_plugins = ["tests.browser"]
pytestmark = pytest.mark.browser

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"


def test_transcriber_notebook_shows_the_words_live(lab, lab_page, save_screenshot):
    # The notebook finds its recording at ../../shared/speech, as in a clone with shared/
    # beside it: recreate that layout inside the server's root.
    lab.copy_in(REPO / "notebooks" / "03_transcriber_agent.ipynb", "kit/notebooks/03.ipynb")
    shared = lab.root_dir / "shared"
    if not shared.exists():
        shared.symlink_to(SHARED, target_is_directory=True)
    started = time.monotonic()
    open_notebook(lab_page, "kit/notebooks/03.ipynb")
    wait_for_kernel_idle(lab_page)
    run_all(lab_page)
    # Interim or final, the words arrive while the recording is still playing...
    wait_for_text(lab_page, ".stt-transcript-view", "fellow americans", timeout=90)
    view = lab_page.locator(".stt-transcript-view").first
    view.scroll_into_view_if_needed()
    live = save_screenshot(lab_page, "notebook03_live")
    # ...and the final utterances, with their latency, end up in the list.
    text = wait_for_text(lab_page, ".stt-row", "ask not", timeout=90)
    assert "country" in text.lower() or "ask not" in text.lower()
    wait_for_text(lab_page, ".stt-status", "stopped", timeout=90)
    view.scroll_into_view_if_needed()
    final = save_screenshot(lab_page, "notebook03_done")
    rows = lab_page.locator(".stt-row").all_inner_texts()
    assert len(rows) >= 3, rows
    assert all(" ms" in row for row in rows)  # every final shows its latency
    print(
        json.dumps(
            {"seconds": round(time.monotonic() - started, 1), "shots": [str(live), str(final)]}
        )
    )
