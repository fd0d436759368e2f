"""`make site`: the executed course as static HTML, in a real browser (headless Chromium,
offline: the widget library cannot load, so this is what a reader without a kernel or a
network sees). Every page's pictures render; 03 and 04, the notebooks with transcripts, show
the transcript words."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.register_assert_rewrite("tests.browser")
from tests.browser import pictures, pictures_in_markdown  # noqa: E402
from tools import site  # noqa: E402

pytest_plugins = ["tests.browser"]
# room_media: notebooks 01, 03 and 06 run rooms with media on the kit's LiveKit server
pytestmark = [pytest.mark.browser, pytest.mark.notebooks, pytest.mark.room_media]

REPO = Path(__file__).resolve().parents[1]
SAVED_ROWS = ".stt-transcript-saved .stt-row"
NOTEBOOKS = sorted((REPO / "notebooks").glob("*.ipynb"))


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("site")
    site.build(out, NOTEBOOKS)
    return out


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
