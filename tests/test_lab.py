"""`make lab` as a learner meets it: opening and saving a notebook leaves it as committed, and
nothing is logged after the URL that the learner did not cause.

The server is started the way `make lab` starts it (`python -m tools.lab`: the notebooks
trusted, jupyter/jupyter_server_config.py), with a fresh Jupyter home, on a copy of the
committed notebooks whose bytes are compared with the committed ones.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

pytest.register_assert_rewrite("tests.browser")
from tests.browser import (  # noqa: E402
    VIEWPORT,
    JupyterLab,
    console_tail,
    running_jupyter_lab,
    wait_for_kernel_idle,
)
from tools.lab import FIRST_NOTEBOOK  # noqa: E402

pytest_plugins = ["tests.browser"]
pytestmark = pytest.mark.browser

REPO = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((REPO / "notebooks").glob("*.ipynb"))
# What JupyterLab writes into `language_info` once the kernel started: the learner's Python.
FILLED_IN = {
    "codemirror_mode": {"name": "ipython", "version": 3},
    "file_extension": ".py",
    "mimetype": "text/x-python",
    "name": "python",
    "nbconvert_exporter": "python",
    "pygments_lexer": "ipython3",
    "version": "3.99.1",
}


@pytest.fixture
def course_lab(tmp_path: Path) -> Iterator[JupyterLab]:
    """A fresh server per test: saving signs a notebook, so a notebook saved by one test would
    be trusted in the next whether or not `make lab` trusted it."""
    home, course = tmp_path / "learner-home", tmp_path / "course"
    home.mkdir()
    course.mkdir()
    for notebook in NOTEBOOKS:
        shutil.copy(notebook, course / notebook.name)
    shutil.copy(REPO / ".gitignore", course / ".gitignore")
    _git(course, "init", "--quiet")
    _git(course, "add", "--all")
    _git(course, "commit", "--quiet", "--message", "the course as committed")
    # window.jupyterapp: the test reads what JupyterLab holds in memory (never the learner's)
    exposed = "--LabApp.expose_app_in_browser=True"
    with running_jupyter_lab(course, home, exposed, as_make_lab=True) as lab:
        yield lab


def _git(folder: Path, *args: str) -> str:
    identity = ["-c", "user.name=learner", "-c", "user.email=learner@example.org"]
    done = subprocess.run(
        ["git", *identity, *args], cwd=folder, capture_output=True, text=True, check=True
    )
    return done.stdout


def _after_the_url(lab: JupyterLab) -> list[str]:
    """What the server logged after the last line of its URL banner."""
    lines = lab.log_path.read_text(errors="replace").splitlines()
    url = [i for i, line in enumerate(lines) if "?token=" in line]
    assert url, f"no URL in the log:\n{lab.log_tail()}"
    return [line for line in lines[url[-1] + 1 :] if line.strip()]


def test_saving_any_python_versions_metadata_writes_the_committed_bytes(course_lab) -> None:
    """Through the contents API, as JupyterLab's autosave does, for every notebook."""
    for notebook in NOTEBOOKS:
        model = course_lab.api(f"contents/{notebook.name}?content=1")
        model["content"]["metadata"]["language_info"] = FILLED_IN
        saved = {"type": "notebook", "format": "json", "content": model["content"]}
        course_lab.api(f"contents/{notebook.name}", put=saved)
        assert (course_lab.root_dir / notebook.name).read_bytes() == notebook.read_bytes()


def test_open_and_save_in_jupyterlab_changes_nothing_and_logs_nothing(
    course_lab, launch_chromium
) -> None:
    """Chromium opens the URL the server printed (the first notebook; its kernel starts) and
    saves the notebook; then the file is the committed one, and the log says nothing after
    the URL: no "not trusted", no unencrypted kernel transport, no websocket ping warning."""
    url = re.findall(r"http://\S+\?token=\w+", course_lab.log_path.read_text())[0]
    name = FIRST_NOTEBOOK
    assert f"/lab/tree/{name}?" in url
    browser = launch_chromium()
    context = browser.new_context(viewport=VIEWPORT)
    page = context.new_page()
    page.console_lines = []
    page.on("console", lambda m: page.console_lines.append(f"{m.type}: {m.text}"))
    page.goto(url)
    page.locator(".jp-NotebookPanel .jp-Cell").first.wait_for(state="visible", timeout=60_000)
    wait_for_kernel_idle(page)
    with page.expect_response(lambda r: r.request.method == "PUT" and name in r.url) as saving:
        page.keyboard.press("Control+s")
    assert saving.value.ok, console_tail(page)
    # JupyterLab did fill in the kernel's language_info (and saved it); the file on disk is
    # as committed.
    in_memory = page.evaluate(
        "() => window.jupyterapp.shell.currentWidget.context.model.getMetadata('language_info')"
    )
    assert "version" in in_memory, in_memory
    assert (course_lab.root_dir / name).read_bytes() == (REPO / "notebooks" / name).read_bytes()
    assert _git(course_lab.root_dir, "status", "--porcelain") == ""
    assert _after_the_url(course_lab) == []
    context.close()
