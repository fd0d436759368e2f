"""`make lab`: JupyterLab on the course's notebooks, quiet, leaving the notebooks as committed.

    python -m tools.lab [--notebooks DIR] [JUPYTER LAB OPTIONS ...]

1. Trusts the notebooks that have no outputs, as `jupyter trust` does (their signatures go
   into the learner's Jupyter data folder), so opening one does not log "Notebook ... is not
   trusted". The course's notebooks are committed without outputs, so trusting them lets no
   HTML or JavaScript run unasked; a notebook with outputs from elsewhere stays untrusted.
   The server signs every notebook it saves, so the learner's own work stays trusted.
2. Becomes `jupyter lab` in the notebooks' folder, opening the first notebook, with
   jupyter/jupyter_server_config.py on JUPYTER_CONFIG_PATH: see that file for what it sets.

Options after the course's own are passed to `jupyter lab` last, so they win (the tests give a
port, a token and a copy of the notebooks this way: they run the server `make lab` runs).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import nbformat
from nbformat.sign import NotebookNotary

REPO = Path(__file__).resolve().parents[1]
CONFIG_DIR = REPO / "jupyter"
FIRST_NOTEBOOK = "01_livekit_constructs.ipynb"


def trust(notebooks: list[Path]) -> None:
    """Sign those of `notebooks` without outputs in the notary store the server reads."""
    notary = NotebookNotary()
    for path in notebooks:
        nb = nbformat.read(path, as_version=nbformat.NO_CONVERT)
        if any(cell.get("outputs") for cell in nb.cells):
            continue
        if not notary.check_signature(nb):
            notary.sign(nb)


def command(extra: list[str]) -> list[str]:
    """The `jupyter lab` command line for the course (it serves its working folder)."""
    args = [sys.executable, "-m", "jupyterlab", f"--LabApp.default_url=/lab/tree/{FIRST_NOTEBOOK}"]
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        args.append("--allow-root")  # containers and CI runners
    return [*args, *extra]


def environment(base: dict[str, str]) -> dict[str, str]:
    """`base` with the course's server settings on JUPYTER_CONFIG_PATH (after any already
    there: a learner's own settings keep their priority)."""
    env = dict(base)
    paths = [p for p in env.get("JUPYTER_CONFIG_PATH", "").split(os.pathsep) if p]
    env["JUPYTER_CONFIG_PATH"] = os.pathsep.join([*paths, str(CONFIG_DIR)])
    return env


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tools.lab", description=__doc__, allow_abbrev=False
    )
    parser.add_argument("--notebooks", type=Path, default=REPO / "notebooks")
    args, extra = parser.parse_known_args(argv)
    folder = args.notebooks.resolve()
    notebooks = sorted(folder.glob("*.ipynb"))
    if not notebooks:
        print(f"lab: no notebooks in {folder}", file=sys.stderr)
        return 1
    trust(notebooks)
    first = f"start with {FIRST_NOTEBOOK} (the address below opens it)"
    print(f"==> JupyterLab on {folder.name}/: {first}.")
    print("    Ctrl-C twice stops it.", flush=True)
    os.chdir(folder)
    cmd = command(extra)
    # exec: Ctrl-C and the exit status are JupyterLab's own, as if make had started it
    os.execve(cmd[0], cmd, environment(dict(os.environ)))


if __name__ == "__main__":
    sys.exit(main())
