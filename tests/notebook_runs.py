"""Running the course's notebooks headlessly, and the one no-settings run of each per session.

A notebook runs in a sandbox: a throwaway repository tree (a `pyproject.toml` at its root, so
the `.env` search stops there, and nothing beside it but a copy of notebooks/), executed with
nbclient on this venv's `python3` kernel.

The run with no settings at all (no `.env`, no LIVEKIT_*/ASSEMBLYAI_* variables) is what
tests/test_notebooks.py checks the prose's promises on and what the course site renders
(tests/test_site.py): the same inputs give the same run, so a session executes each notebook
that way once (`NoSettingsRuns`) and every check reads that one executed copy.
"""

from __future__ import annotations

import os
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import nbformat
from jupyter_client.kernelspec import KernelSpecManager
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError

REPO = Path(__file__).resolve().parents[1]
NOTEBOOK_DIR = REPO / "notebooks"
BUDGET_S = 180  # per cell, and for a whole notebook
KERNEL = "python3"
KIT_ENV_PREFIXES = ("LIVEKIT_", "ASSEMBLYAI_", "STT_AGENT_")


def make_sandbox(parent: Path) -> Path:
    """<parent>/repo with pyproject.toml, .gitignore and a copy of notebooks/: nothing else, so
    a notebook that reached outside the kit (../shared, the tests) would fail here."""
    root = parent / "repo"
    root.mkdir(parents=True)
    (root / "pyproject.toml").write_text('[project]\nname = "notebook-sandbox"\nversion = "0"\n')
    if (REPO / ".gitignore").is_file():
        shutil.copy(REPO / ".gitignore", root / ".gitignore")
    shutil.copytree(
        NOTEBOOK_DIR,
        root / "notebooks",
        ignore=shutil.ignore_patterns(".ipynb_checkpoints", "*.jsonl", ".env"),
    )
    return root


def kernel_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(KIT_ENV_PREFIXES)}
    env.pop("MPLBACKEND", None)  # the inline backend, as in JupyterLab
    # The kit under test, even if the venv's editable install points elsewhere.
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH")) if p)
    return env


def check_kernel_is_this_venv() -> None:
    spec = KernelSpecManager().get_kernel_spec(KERNEL)
    # jupyter_client swaps a bare `python` for sys.executable: this venv's interpreter.
    bare = {"python", f"python{sys.version_info[0]}", "python{}.{}".format(*sys.version_info[:2])}
    argv0 = spec.argv[0]
    same = argv0 in bare or Path(argv0).resolve() == Path(sys.executable).resolve()
    in_venv = Path(spec.resource_dir).resolve().is_relative_to(Path(sys.prefix).resolve())
    assert same and in_venv, (
        f"the {KERNEL!r} kernel ({spec.resource_dir}) runs {argv0}, not this venv's "
        f"{sys.executable}: run `python -m ipykernel install --sys-prefix` in the venv"
    )


@dataclass
class Run:
    """An executed notebook: what it shows, how long it took, and its error (None if none)."""

    nb: nbformat.NotebookNode
    seconds: float
    error: str | None


def execute(path: Path, env: dict[str, str]) -> Run:
    """Run a notebook in its own folder."""
    check_kernel_is_this_venv()
    nb = nbformat.read(path, as_version=4)
    client = NotebookClient(
        nb,
        kernel_name=KERNEL,
        timeout=BUDGET_S,
        startup_timeout=60,
        allow_errors=False,
        store_widget_state=True,
        resources={"metadata": {"path": str(path.parent)}},
    )
    started = time.perf_counter()
    error = None
    try:
        client.execute(env=env)
    except CellExecutionError as e:
        error = str(e)
    except TimeoutError as e:
        error = f"a cell ran longer than {BUDGET_S} s: {e}"
    return Run(nb, time.perf_counter() - started, error)


class NoSettingsRuns:
    """Each notebook run once with no settings, each in a sandbox of its own, on first use.

    The executed notebooks are shared: readers must not change them (nbconvert's exporters
    work on a copy)."""

    def __init__(self, folder: Path) -> None:
        self._folder = folder
        self._runs: dict[str, Run] = {}

    def __call__(self, notebook: Path) -> Run:
        if notebook.stem not in self._runs:
            sandbox = make_sandbox(self._folder / notebook.stem)
            self._runs[notebook.stem] = execute(sandbox / "notebooks" / notebook.name, kernel_env())
        return self._runs[notebook.stem]
