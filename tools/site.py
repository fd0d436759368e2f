"""`make site`: the course executed and rendered to static HTML, one page per notebook.

    python -m tools.site [--out build/site] [NOTEBOOK ...]

Each notebook runs top to bottom (nbclient, this venv's python3 kernel) in a temporary folder
outside the repository, with no `.env` and no LIVEKIT_*/ASSEMBLYAI_* variables: the pages show
the embedded default (local mode, local engine), never anyone's keys. nbconvert's lab template
renders the result. The transcript and status views carry saved copies of what they showed, so
the words are on the page even where the widgets cannot run (no kernel, no network for the
widget library); with a network, the saved widget state renders the widgets themselves.
"""

from __future__ import annotations

import argparse
import html
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError
from nbconvert import HTMLExporter

REPO = Path(__file__).resolve().parents[1]
CELL_TIMEOUT_S = 300
_SCRUBBED = ("LIVEKIT_", "ASSEMBLYAI_", "STT_AGENT_")


class SiteError(RuntimeError):
    """A notebook that did not run; the message names it and the failing cell."""


def _title(nb: nbformat.NotebookNode, fallback: str) -> str:
    for cell in nb.cells:
        if cell.cell_type == "markdown" and cell.source.startswith("# "):
            return cell.source.splitlines()[0][2:].strip()
    return fallback


def execute(path: Path) -> nbformat.NotebookNode:
    """Run a notebook in its folder; raises SiteError naming the cell that failed."""
    nb = nbformat.read(path, as_version=4)
    env = {k: v for k, v in os.environ.items() if not k.startswith(_SCRUBBED)}
    env.pop("MPLBACKEND", None)  # the inline backend: plots become images on the page
    client = NotebookClient(
        nb,
        kernel_name="python3",
        timeout=CELL_TIMEOUT_S,
        startup_timeout=60,
        store_widget_state=True,
        resources={"metadata": {"path": str(path.parent)}},
    )
    try:
        client.execute(env=env)
    except CellExecutionError as e:
        last = (str(e).strip().splitlines() or ["?"])[-1]
        raise SiteError(f"{path.name}: a cell failed ({last[:200]})") from None
    except TimeoutError:
        raise SiteError(f"{path.name}: a cell ran longer than {CELL_TIMEOUT_S} s") from None
    return nb


def render(nb: nbformat.NotebookNode) -> str:
    body, _ = HTMLExporter(template_name="lab").from_notebook_node(nb)
    return body


def write_page(out: Path, stem: str, nb: nbformat.NotebookNode) -> tuple[Path, str]:
    """Render an executed notebook to `out/<stem>.html`; (page, title)."""
    page = out / f"{stem}.html"
    page.write_text(render(nb), encoding="utf-8")
    return page, _title(nb, stem)


def write_index(out: Path, pages: list[tuple[Path, str]]) -> None:
    """`out/index.html`, linking the (page, title) pairs in their order."""
    (out / "index.html").write_text(_index(pages), encoding="utf-8")


def build(out: Path, notebooks: list[Path]) -> list[tuple[Path, str, float]]:
    """Execute and render `notebooks` into `out`; (page, title, seconds) for each."""
    out.mkdir(parents=True, exist_ok=True)
    pages = []
    with tempfile.TemporaryDirectory(prefix="stt-agent-site-") as tmp:
        course = Path(tmp) / "course"  # outside the repository: no .env is found
        course.mkdir()
        for source in notebooks:
            copy = course / source.name
            shutil.copy(source, copy)
            started = time.perf_counter()
            page, title = write_page(out, source.stem, execute(copy))
            pages.append((page, title, time.perf_counter() - started))
            print(
                f"  {page.relative_to(out.parent) if out.parent in page.parents else page}"
                f"  ({pages[-1][2]:.0f} s)",
                flush=True,
            )
    write_index(out, [(page, title) for page, title, _ in pages])
    return pages


def _index(pages: list[tuple[Path, str]]) -> str:
    items = "\n".join(
        f"<li><a href='{html.escape(page.name)}'>{html.escape(title)}</a></li>"
        for page, title in pages
    )
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>stt-agent: the course</title>
<style>body{{font-family:system-ui,sans-serif;max-width:46rem;margin:3rem auto;line-height:1.5}}
</style></head><body>
<h1>stt-agent: real-time speech-to-text with LiveKit Agents</h1>
<p>The course's notebooks, run top to bottom with no keys (local mode, the local speech
engine) and saved with their outputs.</p>
<ol>
{items}
</ol>
<p>The recordings are the kit's shipped samples: public domain, and LibriSpeech under
CC BY 4.0 (c) 2014 Vassil Panayotov, Guoguo Chen, Daniel Povey, Sanjeev Khudanpur,
openslr.org/12. See <code>stt_agent/samples/README.md</code>.</p>
</body></html>
"""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tools.site", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--out", type=Path, default=REPO / "build" / "site")
    parser.add_argument("notebooks", nargs="*", type=Path)
    args = parser.parse_args(argv)
    notebooks = args.notebooks or sorted((REPO / "notebooks").glob("*.ipynb"))
    missing = [str(p) for p in notebooks if not p.is_file()]
    if missing:
        print(f"site: no such notebook: {', '.join(missing)}", file=sys.stderr)
        return 1
    print(f"site: running {len(notebooks)} notebook(s) and rendering them to {args.out}")
    try:
        build(args.out, notebooks)
    except SiteError as e:
        print(f"site: {e}", file=sys.stderr)
        return 1
    print(f"site: open {args.out / 'index.html'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
