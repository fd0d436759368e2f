"""Browser fixtures: a throwaway JupyterLab server and headless Chromium driven by Playwright.

Use from a test module with ``pytest_plugins = ["tests.browser"]``, then::

    @pytest.mark.browser
    def test_x(lab, lab_page, save_screenshot):  # a plain (not async) test: Playwright's sync API
        lab.write_notebook("x.ipynb", ["import stt_agent", "stt_agent.TranscriptView(...)"])
        open_notebook(lab_page, "x.ipynb")
        wait_for_kernel_idle(lab_page)
        run_all(lab_page)
        wait_for_text(lab_page, ".stt-row", "fellow americans", timeout=60)
        save_screenshot(lab_page, "x")

Nothing is written to the user's home: the server's config, data, runtime, settings and workspace
folders live under pytest's tmp folder. Chromium is Debian's (`/usr/bin/chromium`, or
`$STT_AGENT_CHROMIUM`); Playwright never downloads a browser here. The server, its kernels and the
browsers are always shut down, also when a test fails.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = os.environ.get("STT_AGENT_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = (
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)
# A microphone that plays a WAV file; add `fake_microphone_args(wav)` to `launch_chromium`.
FAKE_MEDIA_ARGS = ("--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream")
SERVER_START_TIMEOUT_S = 60.0
VIEWPORT = {"width": 1280, "height": 900}
# Lab's pop-ups about news and updates would cover what a test looks at.
_DISABLED_LAB_PLUGINS = ("@jupyterlab/apputils-extension:announcements",)
# Variables that would switch the kit away from local mode or leak a user's setup into the lab.
_SCRUBBED_ENV = ("LIVEKIT_", "ASSEMBLYAI_", "STT_AGENT_", "JUPYTER", "IPYTHON", "JPY_")


def fake_microphone_args(wav: str | os.PathLike[str]) -> list[str]:
    """Chromium flags for a microphone that plays `wav` (16-bit PCM WAV, any rate) in a loop.

    Give the file a second or two of silence at the end so utterances close before it repeats.
    (Chromium's `%noloop` suffix is no help: after the file it repeats its last few ms forever.)
    """
    return [*FAKE_MEDIA_ARGS, f"--use-file-for-fake-audio-capture={wav}"]


# --- the JupyterLab server ------------------------------------------------------------------


@dataclass
class JupyterLab:
    """A running `jupyter lab` on 127.0.0.1 (a secure context, so getUserMedia works)."""

    url: str  # ends with "/"
    token: str
    root_dir: Path
    log_path: Path
    process: subprocess.Popen[bytes] = field(repr=False)

    def url_for(self, path: str = "lab") -> str:
        sep = "&" if "?" in path else "?"
        return f"{self.url}{path.lstrip('/')}{sep}token={self.token}"

    def write_notebook(
        self, name: str, cells: Sequence[str | tuple[str, str]], *, metadata: dict | None = None
    ) -> Path:
        """A notebook in the server's root from source strings (or ("markdown", text) pairs)."""
        import nbformat

        nb = nbformat.v4.new_notebook()
        nb.metadata.update(
            {
                "kernelspec": {
                    "name": "python3",
                    "display_name": "Python 3 (ipykernel)",
                    "language": "python",
                },
                "language_info": {"name": "python"},
                **(metadata or {}),
            }
        )
        for cell in cells:
            kind, source = cell if isinstance(cell, tuple) else ("code", cell)
            new = nbformat.v4.new_markdown_cell if kind == "markdown" else nbformat.v4.new_code_cell
            nb.cells.append(new(source))
        path = self.root_dir / name
        path.parent.mkdir(parents=True, exist_ok=True)
        nbformat.write(nb, path)
        return path

    def copy_in(self, source: str | os.PathLike[str], name: str | None = None) -> Path:
        """Copy a file (e.g. a committed notebook) into the server's root."""
        target = self.root_dir / (name or Path(source).name)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(source, target)
        return target

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def api(self, path: str, timeout: float = 5.0, *, put: Any = None, delete: bool = False) -> Any:
        """GET `api/<path>`, PUT the JSON `put` there, or DELETE it; the answer's JSON."""
        request = urllib.request.Request(
            self.url_for(f"api/{path}"),
            data=None if put is None else json.dumps(put).encode(),
            method="DELETE" if delete else "GET" if put is None else "PUT",
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=timeout) as r:
            body = r.read()
        return json.loads(body) if body else None

    def shut_down_kernels(self, folder: str) -> None:
        """End the sessions (and kernels) of the notebooks under `folder`/."""
        for session in self.api("sessions"):
            if session["path"].startswith(f"{folder}/"):
                self.api(f"sessions/{session['id']}", delete=True)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _lab_env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(_SCRUBBED_ENV)}
    dirs = {
        "JUPYTER_CONFIG_DIR": home / "config",
        "JUPYTER_DATA_DIR": home / "data",
        "JUPYTER_RUNTIME_DIR": home / "runtime",
        "IPYTHONDIR": home / "ipython",
        "MPLCONFIGDIR": home / "matplotlib",
    }
    for key, path in dirs.items():
        path.mkdir(parents=True, exist_ok=True)
        env[key] = str(path)
    labconfig = dirs["JUPYTER_CONFIG_DIR"] / "labconfig"
    labconfig.mkdir(exist_ok=True)
    (labconfig / "page_config.json").write_text(
        json.dumps({"disabledExtensions": dict.fromkeys(_DISABLED_LAB_PLUGINS, True)})
    )
    env["JUPYTER_PLATFORM_DIRS"] = "1"
    env["STT_AGENT_ENGINE"] = "local"  # no key, no network: the embedded default
    env["PYTHONUNBUFFERED"] = "1"
    # The kernel imports the kit from this checkout, whatever the server's root folder is.
    repo = str(Path(__file__).resolve().parents[1])
    env["PYTHONPATH"] = os.pathsep.join(p for p in (repo, os.environ.get("PYTHONPATH")) if p)
    return env


@contextlib.contextmanager
def running_jupyter_lab(
    root_dir: Path, home: Path, *options: str, as_make_lab: bool = False
) -> Iterator[JupyterLab]:
    """`jupyter lab` from this venv on a free port, with `options` added; its whole process
    group is stopped after.

    `as_make_lab`: started the way `make lab` starts it (`python -m tools.lab`: the notebooks
    in `root_dir` trusted, the course's server config), on this port; the token is the one the
    server made up and printed in its URL, as a learner gets it.
    """
    port, token = _free_port(), secrets.token_hex(16)
    log_path = home / "jupyter-lab.log"
    settings = home / "lab-settings"
    workspaces = home / "lab-workspaces"
    launcher = ["tools.lab", f"--notebooks={root_dir}"] if as_make_lab else ["jupyterlab"]
    cmd = [
        sys.executable,
        "-m",
        *launcher,
        "--no-browser",
        "--ServerApp.ip=127.0.0.1",
        f"--ServerApp.port={port}",
        "--ServerApp.port_retries=0",
        f"--ServerApp.root_dir={root_dir}",
        *([] if as_make_lab else [f"--IdentityProvider.token={token}"]),
        f"--LabApp.user_settings_dir={settings}",
        f"--LabApp.workspaces_dir={workspaces}",
        "--LabApp.news_url=None",
        "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
        "--MappingKernelManager.cull_idle_timeout=0",
        *options,
    ]
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        cmd.append("--allow-root")  # containers and CI runners
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            cmd,
            cwd=root_dir,
            env=_lab_env(home),
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,  # its kernels join the group, so one signal stops them all
        )
    lab = JupyterLab(f"http://127.0.0.1:{port}/", token, root_dir, log_path, process)
    try:
        if as_make_lab:
            lab.token = _token_from_the_url(lab)
        _wait_until_up(lab)
        yield lab
    finally:
        _stop_group(process)


def _token_from_the_url(lab: JupyterLab) -> str:
    """The token in the URL the server prints for the learner to open."""
    deadline = time.monotonic() + SERVER_START_TIMEOUT_S
    while time.monotonic() < deadline:
        found = re.search(r"\?token=(\w+)", lab.log_tail(200))
        if found:
            return found.group(1)
        if lab.process.poll() is not None:
            break
        time.sleep(0.25)
    raise RuntimeError(f"jupyter lab printed no URL with a token:\n{lab.log_tail()}")


def _wait_until_up(lab: JupyterLab) -> None:
    deadline = time.monotonic() + SERVER_START_TIMEOUT_S
    while time.monotonic() < deadline:
        if lab.process.poll() is not None:
            raise RuntimeError(
                f"jupyter lab exited with {lab.process.returncode}:\n{lab.log_tail()}"
            )
        try:
            lab.api("status", timeout=2)
            return
        except (urllib.error.URLError, ConnectionError, TimeoutError, OSError):
            time.sleep(0.25)
    raise RuntimeError(
        f"jupyter lab did not answer within {SERVER_START_TIMEOUT_S:.0f} s:\n{lab.log_tail()}"
    )


def _stop_group(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM to the server's process group (server + kernels), SIGKILL if it lingers."""
    pgid = process.pid  # start_new_session: the group is the server's own pid
    for sig, wait_s in ((signal.SIGTERM, 10.0), (signal.SIGKILL, 5.0)):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pgid, sig)
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=wait_s)
        if process.poll() is not None and not _group_alive(pgid):
            return


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@pytest.fixture(scope="session")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[JupyterLab]:
    """One JupyterLab server for the session; its root is an empty tmp folder for notebooks."""
    home = tmp_path_factory.mktemp("jupyter-home")
    root = tmp_path_factory.mktemp("lab-root")
    with running_jupyter_lab(root, home) as server:
        yield server


# --- Chromium -------------------------------------------------------------------------------


@pytest.fixture
def playwright() -> Iterator[Any]:
    """Playwright's sync API; tests using it must be plain functions, not `async def`.

    Per test, not per session: while Playwright's sync API is started its event loop counts as
    running on the main thread, and pytest-asyncio could not run any async test after it.
    """
    if not Path(CHROMIUM).exists():
        pytest.skip(
            f"no Chromium at {CHROMIUM} (install Debian's `chromium` or set STT_AGENT_CHROMIUM)"
        )
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as p:
        yield p


@pytest.fixture
def launch_chromium(playwright: Any) -> Iterator[Callable[..., Any]]:
    """`launch_chromium(*extra_args)` -> a headless Browser; every one is closed after the test."""
    browsers: list[Any] = []

    def launch(*extra_args: str, headless: bool = True) -> Any:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM,
            headless=headless,
            args=[*CHROMIUM_ARGS, *extra_args],
        )
        browsers.append(browser)
        return browser

    yield launch
    for browser in browsers:
        with contextlib.suppress(Exception):
            browser.close()


@pytest.fixture
def chromium_args() -> list[str]:
    """Extra Chromium flags for `lab_page`; override this fixture (or parametrize it) per test."""
    return []


@pytest.fixture
def lab_page(
    lab: JupyterLab,
    launch_chromium: Callable[..., Any],
    chromium_args: list[str],
    request: pytest.FixtureRequest,
    save_screenshot: Callable[..., Path],
) -> Iterator[Any]:
    """A logged-in page on `lab` (relative URLs resolve against it), with console messages kept.

    On a failing test a screenshot is saved and its path added to the report.
    """
    browser = launch_chromium(*chromium_args)
    context = browser.new_context(base_url=lab.url, viewport=VIEWPORT)
    page = context.new_page()
    page.console_lines = []  # type: ignore[attr-defined]
    page.on("console", lambda m: page.console_lines.append(f"{m.type}: {m.text}"))  # type: ignore[attr-defined]
    page.on("pageerror", lambda e: page.console_lines.append(f"pageerror: {e}"))  # type: ignore[attr-defined]
    # The token in a URL makes the server set its login cookie; later pages need no token.
    page.goto(lab.url_for("api/status"))
    try:
        yield page
    finally:
        report = getattr(request.node, "_stt_call_report", None)
        if report is not None and report.failed:
            with contextlib.suppress(Exception):
                shot = save_screenshot(page, f"{request.node.name}-failed")
                report.sections.append(("browser", f"screenshot: {shot}\n" + console_tail(page)))
        with contextlib.suppress(Exception):
            context.close()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    report = yield
    if report.when == "call":
        item._stt_call_report = report  # type: ignore[attr-defined]
    return report


@pytest.fixture(scope="session")
def screenshot_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where screenshots are kept: $STT_AGENT_ARTEFACTS/screenshots when set (CI uploads that
    folder), else pytest's tmp folder (pytest keeps the last three sessions' folders)."""
    if artefacts := os.environ.get("STT_AGENT_ARTEFACTS"):
        folder = Path(artefacts) / "screenshots"
        folder.mkdir(parents=True, exist_ok=True)
        return folder
    return tmp_path_factory.mktemp("screenshots", numbered=False)


@pytest.fixture
def save_screenshot(screenshot_dir: Path) -> Callable[..., Path]:
    """`save_screenshot(page, name)` -> the PNG's path under pytest's tmp folder."""

    def save(page: Any, name: str, *, full_page: bool = False) -> Path:
        safe = re.sub(r"[^\w.-]+", "_", name)
        path = screenshot_dir / f"{safe}.png"
        page.screenshot(path=str(path), full_page=full_page)
        return path

    return save


# --- JupyterLab helpers ---------------------------------------------------------------------


_VISIBLE_NOTEBOOK = ".jp-NotebookPanel:not(.lm-mod-hidden)"


def open_notebook(page: Any, path: str, *, timeout: float = 60.0) -> None:
    """Open `path` (relative to the server's root) and wait for its cells to be on screen."""
    # ?reset: a clean workspace, so tabs restored from an earlier test cannot take the focus.
    page.goto(f"lab/tree/{path}?reset")
    page.locator(f"{_VISIBLE_NOTEBOOK} .jp-Cell").first.wait_for(
        state="visible", timeout=timeout * 1000
    )
    # A kernel picker appears when the notebook's kernel is unknown; take the default.
    dialog = page.locator(".jp-Dialog")
    with contextlib.suppress(Exception):
        dialog.wait_for(state="visible", timeout=500)
        page.locator(".jp-Dialog .jp-mod-accept").click()
    # Fold the file browser away: screenshots show the notebook at full width.
    tab = page.locator(".jp-SideBar.jp-mod-left .lm-TabBar-tab.lm-mod-current")
    if tab.count():
        tab.first.click()


def wait_for_kernel_idle(page: Any, *, timeout: float = 60.0) -> None:
    """Until the kernel has started and the status bar reads Idle."""
    page.locator(".jp-StatusBar-TextItem", has_text=re.compile(r"\|\s*Idle")).first.wait_for(
        state="visible", timeout=timeout * 1000
    )


def run_all(page: Any) -> None:
    """Run > Run All Cells, through the menu (a real click, which browsers count as a gesture)."""
    page.locator(_VISIBLE_NOTEBOOK).first.click(position={"x": 5, "y": 5})
    page.locator(".lm-MenuBar-item", has_text=re.compile(r"^Run$")).click()
    page.get_by_role("menuitem", name="Run All Cells", exact=True).click()


def run_cell(page: Any, source: str) -> None:
    """Add a code cell at the end of the open notebook with `source`, and run it."""
    page.locator(f"{_VISIBLE_NOTEBOOK} .jp-Cell").last.click()
    page.keyboard.press("Escape")  # command mode
    page.keyboard.press("b")  # insert below
    page.keyboard.press("Enter")  # edit mode
    page.keyboard.insert_text(source)  # no key events: no auto-closed brackets
    page.keyboard.press("Shift+Enter")


def wait_for_text(page: Any, selector: str, text: str, timeout: float = 60.0) -> str:
    """Until an element matching `selector` contains `text` (case-insensitive); its text.

    On timeout, fails with what the selector did show, the notebook's error outputs and the
    browser console, which is usually enough to see why.
    """
    try:
        handle = page.wait_for_function(
            """([selector, text]) => {
                for (const el of document.querySelectorAll(selector)) {
                    if (el.textContent.toLowerCase().includes(text)) return el.textContent;
                }
                return false;
            }""",
            arg=[selector, text.lower()],
            timeout=timeout * 1000,
            polling=250,
        )
    except Exception as e:
        if type(e).__name__ != "TimeoutError":
            raise
        shown = page.eval_on_selector_all(selector, "els => els.map(e => e.textContent)")
        raise AssertionError(
            f"{text!r} did not appear in {selector!r} within {timeout:.0f} s; it shows {shown!r}\n"
            f"notebook errors: {notebook_errors(page)!r}\n{console_tail(page)}"
        ) from None
    return handle.json_value()


def notebook_errors(page: Any) -> list[str]:
    """Text of error outputs (tracebacks, stderr) in the open notebook."""
    return page.eval_on_selector_all(
        ".jp-OutputArea-output[data-mime-type='application/vnd.jupyter.stderr'], "
        ".jp-RenderedText[data-mime-type='application/vnd.jupyter.error']",
        "els => els.map(e => e.textContent.slice(0, 2000))",
    )


def console_tail(page: Any, lines: int = 30) -> str:
    kept = getattr(page, "console_lines", [])
    return "browser console:\n" + "\n".join(kept[-lines:])


def pictures(page: Any, selector: str = "img", *, timeout: float = 30.0) -> list[dict[str, Any]]:
    """Every picture matching `selector` once it has loaded (or failed to): its `src` (cut
    short) and `naturalWidth`, which is 0 for a picture the browser could not render. Each is
    scrolled into view first, so none is skipped for being off screen."""
    found = page.locator(selector)
    for i in range(found.count()):
        found.nth(i).scroll_into_view_if_needed()
    page.wait_for_function(
        "sel => [...document.querySelectorAll(sel)].every(img => img.complete)",
        arg=selector,
        timeout=timeout * 1000,
        polling=250,
    )
    return page.eval_on_selector_all(
        selector,
        "els => els.map(img => ({src: (img.getAttribute('src') || '').slice(0, 60),"
        " naturalWidth: img.naturalWidth}))",
    )


def pictures_in_markdown(path: Path) -> int:
    """How many pictures the notebook's markdown cells show (Markdown or HTML syntax)."""
    cells = json.loads(path.read_text(encoding="utf-8"))["cells"]
    text = "".join("".join(c["source"]) for c in cells if c["cell_type"] == "markdown")
    return len(re.findall(r"!\[[^\]]*\]\(|<img\b", text))
