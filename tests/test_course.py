"""The course as published: set-up cells, pinned install source, Colab badges, shipped samples.

Static checks, milliseconds: the notebooks' execution is tests/test_notebooks.py and
tests/test_wheel_course.py.
"""

from __future__ import annotations

import base64
import re
import struct
import tomllib
from pathlib import Path

import nbformat
import pytest

from stt_agent import samples
from tools import course, diagrams

REPO = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((REPO / "notebooks").glob("*.ipynb"))
notebook_params = pytest.mark.parametrize("notebook", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])


@notebook_params
def test_starts_with_the_current_setup_cell(notebook: Path) -> None:
    nb = nbformat.read(notebook, as_version=4)
    first_code = next(c for c in nb.cells if c.cell_type == "code")
    assert nb.cells[0].cell_type == "markdown" and nb.cells[1] is first_code
    assert first_code.source == course.setup_cell(*course.course()), (
        f"{notebook.name}: its set-up cell is not the current one; run `python tools/course.py`"
    )


def test_setup_cell_installs_a_pinned_release() -> None:
    repository, ref = course.course()
    version = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["version"]
    assert ref == f"v{version}"
    source = course.setup_cell(repository, ref)
    assert f"git+{repository}@v{version}" in source
    # only installs when missing, and the one install line is pip's own magic
    assert 'if importlib.util.find_spec("stt_agent") is None:' in source
    assert [line for line in source.splitlines() if "pip" in line and "%" in line] == [
        '    %pip install "{KIT}"'
    ]


@notebook_params
def test_uses_only_what_the_kit_ships(notebook: Path) -> None:
    source = "\n".join(c.source for c in nbformat.read(notebook, as_version=4).cells)
    for outside in ("../shared", "shared/speech", "from tests", "import tests", "sys.path"):
        assert outside not in source, f"{notebook.name} reaches outside the kit: {outside!r}"
    for name in re.findall(r"samples\.(?:path|load|info)\(\"(\w+)\"\)", source):
        assert name in samples.names(), f"{notebook.name} uses an unknown sample {name!r}"
    # images travel inside the notebook (Colab opens the .ipynb alone)
    assert not re.search(r"!\[[^\]]*\]\((?!attachment:|https?://)", source)


def test_readme_has_a_colab_badge_per_notebook() -> None:
    readme = (REPO / "README.md").read_text()
    repository, ref = course.course()
    for notebook in NOTEBOOKS:
        assert course.badge(repository, ref, notebook) in readme, (
            f"README.md lacks the Colab badge of {notebook.name}: "
            "`python tools/course.py --badges` prints it"
        )


def test_readme_credits_every_shipped_sample() -> None:
    readme = (REPO / "README.md").read_text()
    attribution = (REPO / "stt_agent" / "samples" / "README.md").read_text()
    for name in samples.names():
        assert f"`{name}`" in readme and f"`{name}`" in attribution, name
    for licence in ("public domain", "CC BY 4.0"):
        assert licence in readme.lower() or licence in readme


def test_samples_are_small_known_and_named() -> None:
    files = sorted((REPO / "stt_agent" / "samples").glob("*.flac"))
    assert sorted(p.stem for p in files) == samples.names()
    assert sum(p.stat().st_size for p in files) <= 2_000_000
    for name in samples.names():
        info = samples.info(name)
        assert info.licence.startswith(("Public domain", "CC BY")), info
        assert info.text and info.attribution and info.path.is_file()
    with pytest.raises(LookupError, match=r"no sample named 'nope'.*jfk"):
        samples.path("nope")


@notebook_params
def test_pictures_are_attachments_every_renderer_shows(notebook: Path) -> None:
    """JupyterLab 4 renders no SVG attachment ("Cannot render unknown image mime type"); the
    diagrams are PNGs rendered from their SVG sources by `python -m tools.diagrams`."""
    nb = nbformat.read(notebook, as_version=4)
    for cell in nb.cells:
        for name, bundle in cell.get("attachments", {}).items():
            assert list(bundle) == ["image/png"], f"{notebook.name}: {name} is {list(bundle)}"
            assert f"attachment:{name}" in cell.source, f"{notebook.name}: {name} is not shown"


def test_each_diagram_is_attached_at_its_rendered_size() -> None:
    for stem, notebook in diagrams.DIAGRAMS.items():
        svg = (REPO / "tools" / "diagrams" / f"{stem}.svg").read_text()
        size = re.search(r'<svg[^>]*\bwidth="(\d+)"[^>]*\bheight="(\d+)"', svg)
        assert size, f"{stem}.svg has no width and height"
        nb = nbformat.read(REPO / "notebooks" / notebook, as_version=4)
        [png] = [
            base64.b64decode(c.attachments[f"{stem}.png"]["image/png"])
            for c in nb.cells
            if f"{stem}.png" in c.get("attachments", {})
        ]
        width, height = struct.unpack(">II", png[16:24])  # the PNG header's IHDR chunk
        expected = tuple(int(n) * diagrams.ZOOM for n in size.groups())
        assert (width, height) == expected, f"re-render it: python -m tools.diagrams ({stem})"
