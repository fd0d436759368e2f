"""`make site`: the executed course as static HTML, in a real browser (headless Chromium,
offline: the widget library cannot load, so this is what a reader without a kernel or a
network sees). Every page's pictures render; 03 and 04, the notebooks with transcripts, show
the transcript words.

The pages are rendered from the session's one no-settings run of each notebook (the run whose
promises tests/test_notebooks.py checks; `make site` runs them the same way: no `.env`, no kit
variables). `make site`'s own running of notebooks is checked on a small notebook of its own.
"""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest

pytest.register_assert_rewrite("tests.browser")
from tests.browser import pictures, pictures_in_markdown  # noqa: E402
from tests.notebook_runs import NoSettingsRuns  # noqa: E402
from tools import site  # noqa: E402

pytest_plugins = ["tests.browser"]
# room_media: notebooks 01, 03 and 06 run rooms with media on the kit's LiveKit server
pytestmark = [pytest.mark.browser, pytest.mark.notebooks, pytest.mark.room_media]

REPO = Path(__file__).resolve().parents[1]
SAVED_ROWS = ".stt-transcript-saved .stt-row"
NOTEBOOKS = sorted((REPO / "notebooks").glob("*.ipynb"))


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory, no_settings_runs: NoSettingsRuns) -> Path:
    """The site, as `make site` writes it, from the session's no-settings runs."""
    out = tmp_path_factory.mktemp("site")
    pages = []
    for notebook in NOTEBOOKS:
        run = no_settings_runs(notebook)
        assert run.error is None, f"{notebook.name} failed without settings:\n{run.error}"
        pages.append(site.write_page(out, notebook.stem, run.nb))
    site.write_index(out, pages)
    return out


def _small_notebook(folder: Path, *cells: str) -> Path:
    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_markdown_cell("# A small page"),
        *map(nbformat.v4.new_code_cell, cells),
    ]
    path = folder / "small.ipynb"
    nbformat.write(nb, path)
    return path


def test_make_site_runs_notebooks_with_no_settings_and_inline_plots(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """`python -m tools.site`: the notebook runs with no kit variables (they could be anyone's
    keys), with the inline backend (plots are pictures on the page), and is linked."""
    secret = "site-test-secret-" + "x" * 24
    monkeypatch.setenv("LIVEKIT_API_SECRET", secret)
    monkeypatch.setenv("ASSEMBLYAI_API_KEY", secret)
    monkeypatch.setenv("MPLBACKEND", "Agg")  # no picture would be shown
    notebook = _small_notebook(
        tmp_path,
        "import os\n"
        "kit = [k for k in os.environ if k.startswith(('LIVEKIT_', 'ASSEMBLYAI_'))]\n"
        "print('kit variables:', kit)",
        "import matplotlib.pyplot as plt\nplt.plot([0, 1], [1, 0])\nplt.show()",
    )
    out = tmp_path / "site"
    assert site.main(["--out", str(out), str(notebook)]) == 0
    page = (out / "small.html").read_text()
    assert "kit variables: []" in page and secret not in page
    assert "data:image/png;base64," in page
    assert "<a href='small.html'>A small page</a>" in (out / "index.html").read_text()
    assert f"open {out / 'index.html'}" in capsys.readouterr().out


def test_make_site_names_the_notebook_that_failed_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    notebook = _small_notebook(tmp_path, "raise RuntimeError('the cell is broken')")
    assert site.main(["--out", str(tmp_path / "site"), str(notebook)]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("site: small.ipynb: a cell failed") and "the cell is broken" in err
    assert len(err.splitlines()) == 1 and "Traceback" not in err


def _open(launch_chromium, page_path: Path):
    browser = launch_chromium()
    page = browser.new_page(viewport={"width": 1200, "height": 900})
    page.goto(page_path.as_uri())
    return page


def test_index_links_every_page(built: Path, launch_chromium) -> None:
    page = _open(launch_chromium, built / "index.html")
    links = page.locator("a").evaluate_all("els => els.map(e => e.getAttribute('href'))")
    assert links == [f"{p.stem}.html" for p in NOTEBOOKS]


def test_every_picture_on_every_page_renders(built: Path, launch_chromium) -> None:
    """The markdown's pictures (attachments, embedded by nbconvert) and the plots of the
    executed cells: none may be broken (natural width 0)."""
    shown = {}
    for notebook in NOTEBOOKS:
        page = _open(launch_chromium, built / f"{notebook.stem}.html")
        shown[notebook.stem] = pictures(page)
        assert len(shown[notebook.stem]) >= pictures_in_markdown(notebook), shown
        page.close()
    assert sum(map(len, shown.values())) >= 1
    broken = {name: [p for p in found if p["naturalWidth"] == 0] for name, found in shown.items()}
    assert not any(broken.values()), f"broken pictures: {broken}"


@pytest.mark.parametrize(
    ("name", "words"),
    [
        (
            "03_transcriber_agent",
            ["kennedy", "what your country can do for you", "for your country"],
        ),
        ("04_turn_handlers", ["your country", "alert: ['country']", "rather selfish"]),
    ],
)
def test_pages_show_the_transcript_words(
    built: Path, launch_chromium, save_screenshot, name: str, words: list[str]
) -> None:
    page = _open(launch_chromium, built / f"{name}.html")
    rows = page.locator(SAVED_ROWS)
    assert rows.count() >= 3
    rows.first.scroll_into_view_if_needed()
    assert rows.first.is_visible()
    shown = " ".join(rows.all_inner_texts()).lower()
    for said in words:
        assert said in shown, f"{said!r} is not on the {name} page: {shown[:500]}"
    status = page.locator(".stt-status-saved")
    if status.count():
        assert "stopped" in status.first.inner_text()
    print(save_screenshot(page, f"site_{name}"))
