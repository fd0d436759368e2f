"""Keep the course's links in step with pyproject.toml: the notebooks' set-up cells and the
README's "Open in Colab" badges.

    python tools/course.py           # rewrite every notebook's set-up cell
    python tools/course.py --badges  # print the README's course table links

Where the course is published is `[tool.stt-agent.course] repository` in pyproject.toml; the
pinned ref is the release tag `v<version>`. The set-up cell is each notebook's first code cell:
in Colab or on a JupyterHub it installs the kit from that pinned ref when the kernel does not
have it, and does nothing otherwise. tests/test_course.py checks that all of this agrees.
"""

from __future__ import annotations

import sys
import tomllib
from pathlib import Path

import nbformat

REPO = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((REPO / "notebooks").glob("*.ipynb"))
SETUP_MARKER = "# Set-up for Colab and JupyterHub"
COLAB_BADGE = "https://colab.research.google.com/assets/colab-badge.svg"


def course() -> tuple[str, str]:
    """(repository URL, pinned ref) from pyproject.toml."""
    project = tomllib.loads((REPO / "pyproject.toml").read_text())
    repository = project["tool"]["stt-agent"]["course"]["repository"].rstrip("/")
    return repository, f"v{project['project']['version']}"


def pip_source(repository: str, ref: str) -> str:
    return f"git+{repository}@{ref}"


def setup_cell(repository: str, ref: str) -> str:
    return "\n".join(
        [
            f"{SETUP_MARKER}: installs the kit when this kernel does not have it",
            "# (a fresh Colab session); does nothing when it does (after `make lab`, say).",
            "# STT_AGENT_PIP_SPEC can point it elsewhere: a fork, a mirror, a wheel file.",
            "import importlib.util",
            "import os",
            "",
            f'KIT = os.environ.get("STT_AGENT_PIP_SPEC", "{pip_source(repository, ref)}")',
            'if importlib.util.find_spec("stt_agent") is None:',
            '    %pip install "{KIT}"',
        ]
    )


def colab_url(repository: str, ref: str, notebook: Path) -> str:
    owner_and_name = repository.removeprefix("https://github.com/")
    return (
        f"https://colab.research.google.com/github/{owner_and_name}/blob/{ref}/notebooks/"
        f"{notebook.name}"
    )


def badge(repository: str, ref: str, notebook: Path) -> str:
    return f"[![Open in Colab]({COLAB_BADGE})]({colab_url(repository, ref, notebook)})"


def write_setup_cells() -> list[Path]:
    """Put the current set-up cell right after each notebook's title; the changed ones."""
    source = setup_cell(*course())
    changed = []
    for path in NOTEBOOKS:
        nb = nbformat.read(path, as_version=4)
        at = 1 if nb.cells and nb.cells[0].cell_type == "markdown" else 0
        present = [i for i, c in enumerate(nb.cells) if c.source.startswith(SETUP_MARKER)]
        if present == [at] and nb.cells[at].source == source:
            continue
        for i in reversed(present):
            del nb.cells[i]
        cell = nbformat.v4.new_code_cell(source)
        cell.id = "setup"
        nb.cells.insert(at, cell)
        nbformat.write(nb, path)
        changed.append(path)
    return changed


def main(argv: list[str]) -> int:
    repository, ref = course()
    if argv == ["--badges"]:
        for path in NOTEBOOKS:
            print(f"{path.stem}: {badge(repository, ref, path)}")
        return 0
    if argv:
        print(__doc__, file=sys.stderr)
        return 2
    for path in write_setup_cells():
        print(f"updated the set-up cell of {path.relative_to(REPO)}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
