"""Render the course's diagrams (tools/diagrams/*.svg) to PNG attachments of the notebooks.

    python -m tools.diagrams    # needs rsvg-convert (Debian/Ubuntu: apt install librsvg2-bin)

A run at authoring time, whose result is committed: the notebooks carry PNGs, which every
renderer shows (JupyterLab does not render an SVG attachment: "Cannot render unknown image
mime type image/svg+xml"), and nobody who opens the course needs the tool. Each picture is
rendered at twice its drawn size, so its text stays sharp on a high-density screen and where
the page scales it up, and stored as a 256-colour PNG, which keeps the notebook small.
"""

from __future__ import annotations

import base64
import io
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
SOURCES = REPO / "tools" / "diagrams"
ZOOM = 2
# diagram -> the notebook whose markdown shows it as attachment:<diagram>.png
DIAGRAMS = {"livekit_constructs": "01_livekit_constructs.ipynb"}


def render(svg: Path) -> bytes:
    """The SVG as an optimised palette PNG, through librsvg's command line tool."""
    rsvg = shutil.which("rsvg-convert")
    if rsvg is None:
        raise SystemExit("diagrams: rsvg-convert not found; apt install librsvg2-bin")
    png = subprocess.run(
        [rsvg, "--zoom", str(ZOOM), "--background-color", "white", str(svg)],
        check=True,
        capture_output=True,
    ).stdout
    image = Image.open(io.BytesIO(png)).convert("RGB").quantize(256)
    out = io.BytesIO()
    image.save(out, format="PNG", optimize=True)
    return out.getvalue()


def attach(notebook: Path, name: str, png: bytes) -> None:
    """Put `png` on the markdown cell that shows attachment:<name>, instead of what it had."""
    nb = nbformat.read(notebook, as_version=4)
    cells = [c for c in nb.cells if c.cell_type == "markdown" and f"attachment:{name}" in c.source]
    if not cells:
        raise SystemExit(f"diagrams: no cell of {notebook.name} shows attachment:{name}")
    for cell in cells:
        cell.attachments = {name: {"image/png": base64.b64encode(png).decode("ascii")}}
    notebook.write_text(nbformat.writes(nb) + "\n", encoding="utf-8")


def main() -> int:
    for stem, notebook in DIAGRAMS.items():
        png = render(SOURCES / f"{stem}.svg")
        attach(REPO / "notebooks" / notebook, f"{stem}.png", png)
        print(f"diagrams: {stem}.png ({len(png) // 1024} KB) -> notebooks/{notebook}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
