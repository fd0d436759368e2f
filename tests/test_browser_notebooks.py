"""The committed notebooks in a real JupyterLab, in headless Chromium: every picture renders,
and in 03 and 04, after Run All, the recording's words appear in the TranscriptView on the
page. Screenshots are kept as test artefacts (printed with their paths)."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import pytest

pytest.register_assert_rewrite("tests.browser")  # it is a plugin too (below)
from tests.browser import (  # noqa: E402
    console_tail,
    open_notebook,
    pictures,
    pictures_in_markdown,
    run_all,
    wait_for_kernel_idle,
    wait_for_text,
)

pytest_plugins = ["tests.browser"]
pytestmark = pytest.mark.browser

REPO = Path(__file__).resolve().parents[1]
ROWS = ".stt-transcript-view .stt-row"  # the live widget's rows (not its hidden saved copy)
NOTEBOOKS = sorted(p.name for p in (REPO / "notebooks").glob("*.ipynb"))
_VISIBLE = ".jp-NotebookPanel:not(.lm-mod-hidden)"


def _run_all(lab, page, notebook: str) -> float:
    """Copy a committed notebook into the lab (alone: it needs nothing beside it), open it,
    Run All; returns the start time."""
    lab.copy_in(REPO / "notebooks" / notebook, f"course/{notebook}")
    started = time.monotonic()
    open_notebook(page, f"course/{notebook}")
    wait_for_kernel_idle(page)
    run_all(page)
    return started


def _saved_copies_are_hidden(page) -> None:
    """The views' saved copies (for readers without a kernel) are in the page but not shown
    next to the live widgets."""
    copies = page.locator(".stt-transcript-saved")
    assert copies.count() >= 1
    assert "utterances" in copies.first.text_content()
    assert not any(copies.nth(i).is_visible() for i in range(copies.count()))


def test_every_picture_in_every_notebook_renders(lab, lab_page) -> None:
    """An attachment JupyterLab cannot render (an SVG, say) shows as a broken picture, whose
    natural width is 0; opening each notebook, unexecuted, is enough to see it."""
    shown = {}
    for notebook in NOTEBOOKS:
        lab.copy_in(REPO / "notebooks" / notebook, f"pictures/{notebook}")
        open_notebook(lab_page, f"pictures/{notebook}")
        expected = pictures_in_markdown(REPO / "notebooks" / notebook)
        selector = f"{_VISIBLE} .jp-MarkdownCell img"
        lab_page.wait_for_function(
            "([sel, n]) => document.querySelectorAll(sel).length >= n",
            arg=[selector, expected],
            timeout=60_000,
        )
        shown[notebook] = pictures(lab_page, selector)
        assert len(shown[notebook]) == expected, (notebook, shown[notebook])
    lab.shut_down_kernels("pictures")  # opening started them; nothing here runs a cell
    assert sum(map(len, shown.values())) >= 1  # the course has pictures, and they were found
    broken = {nb: [p for p in found if p["naturalWidth"] == 0] for nb, found in shown.items()}
    assert not any(broken.values()), f"broken pictures: {broken}\n{console_tail(lab_page)}"


@pytest.mark.room_media  # notebook 03 runs its room on the kit's LiveKit server
def test_transcriber_notebook_shows_the_words_live(lab, lab_page, save_screenshot):
    started = _run_all(lab, lab_page, "03_transcriber_agent.ipynb")
    # Interim or final, the words arrive while the recording is still playing...
    # (room mode on the kit's server: Opus, then tiny.en, which often hears "as not", so the
    # checks rest on the longer phrases)
    wait_for_text(lab_page, ".stt-transcript-view", "your country", timeout=90)
    view = lab_page.locator(".stt-transcript-view").first
    view.scroll_into_view_if_needed()
    live = save_screenshot(lab_page, "notebook03_live")
    # ...and the final utterances, with their latency, end up in the list.
    text = wait_for_text(lab_page, ROWS, "do for your country", timeout=90)
    assert "kennedy" in text.lower()  # under the speaker's identity
    wait_for_text(lab_page, ".stt-status-view .stt-status", "stopped", timeout=90)
    lab_page.locator(".stt-transcript-view").first.scroll_into_view_if_needed()
    final = save_screenshot(lab_page, "notebook03_done")
    rows = lab_page.locator(ROWS).all_inner_texts()
    assert len(rows) >= 3, rows
    _saved_copies_are_hidden(lab_page)
    assert all(" ms" in row for row in rows)  # every final shows its latency
    # "Keep working while it transcribes" saw utterances arrive while it worked.
    working = wait_for_text(lab_page, ".jp-OutputArea-output", "pieces of other work", timeout=30)
    arrived = re.search(r"meanwhile (\d+) utterances arrived", working)
    assert arrived and int(arrived.group(1)) > 0, working
    print(
        json.dumps(
            {"seconds": round(time.monotonic() - started, 1), "shots": [str(live), str(final)]}
        )
    )


def test_turn_handlers_notebook_shows_words_and_what_the_handlers_added(
    lab, lab_page, save_screenshot
):
    started = _run_all(lab, lab_page, "04_turn_handlers.ipynb")
    # The keyword alert fires on "country" before the notebook removes it...
    alert = wait_for_text(lab_page, ROWS, "alert: ['country']", timeout=120)
    assert "country" in alert.lower()
    lab_page.locator(".stt-transcript-view").first.scroll_into_view_if_needed()
    live = save_screenshot(lab_page, "notebook04_live")
    # ...and the whole playlist ends up in the view: the last recording's words, annotated.
    wait_for_text(lab_page, ROWS, "rather selfish", timeout=150)
    # Run All reached the end: the exercises' checks ran.
    wait_for_text(lab_page, ".jp-OutputArea-output", "question (statement)", timeout=90)
    lab_page.locator(".stt-transcript-view").first.scroll_into_view_if_needed()
    final = save_screenshot(lab_page, "notebook04_done")
    rows = lab_page.locator(ROWS).all_inner_texts()
    assert len(rows) >= 5, rows
    _saved_copies_are_hidden(lab_page)
    assert any("this handler has a bug" in row for row in rows)  # isolated, shown, not fatal
    assert any("wpm:" in row for row in rows)
    assert any("fixed: True" in row for row in rows)  # the replaced handler took over
    print(
        json.dumps(
            {"seconds": round(time.monotonic() - started, 1), "shots": [str(live), str(final)]}
        )
    )
