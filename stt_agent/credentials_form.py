"""A form for the four keys of the tutorial that writes `.env` safely, then checks the result.

`CredentialsForm()` shows LIVEKIT_URL and LIVEKIT_API_KEY as text and LIVEKIT_API_SECRET and
ASSEMBLYAI_API_KEY as masked password fields. Save writes `.env` (mode 0600, other lines
kept), clears the password fields so no secret stays in the notebook's widget state, and shows
what `python -m stt_agent check` would say: problems with their fix, reachability probes and the
mode that will run. Nothing here validates or probes on its own: it calls `load_settings`,
`Settings.problems()`, `probe_livekit`, `probe_assemblyai` and `describe_mode()`.
"""

from __future__ import annotations

import asyncio
import contextlib
import html
import os
import re
import shutil
import stat
import subprocess
import sys
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import ipywidgets as widgets
from dotenv import dotenv_values
from jwt.warnings import InsecureKeyLengthWarning

from .config import Problem, Settings, load_settings
from .probes import ProbeResult, probe_assemblyai, probe_livekit

__all__ = [
    "FORM_VARIABLES",
    "CheckReport",
    "CredentialsForm",
    "GitIgnoreStatus",
    "check_settings",
    "default_env_path",
    "file_mode",
    "gitignore_status",
    "repo_root",
    "write_env_file",
]

# The tutorial's four variables: (name, label, is_secret).
FORM_VARIABLES: tuple[tuple[str, str, bool], ...] = (
    ("LIVEKIT_URL", "LiveKit URL", False),
    ("LIVEKIT_API_KEY", "LiveKit API key", False),
    ("LIVEKIT_API_SECRET", "LiveKit API secret", True),
    ("ASSEMBLYAI_API_KEY", "AssemblyAI API key", True),
)
_PLACEHOLDERS = {
    "LIVEKIT_URL": "wss://<project>.livekit.cloud or ws://localhost:7880",
    "LIVEKIT_API_KEY": "APIxxxxxxxx (devkey for livekit-server --dev)",
    "LIVEKIT_API_SECRET": "paste the secret (secret for livekit-server --dev)",
    "ASSEMBLYAI_API_KEY": "paste your key from the AssemblyAI dashboard",
}
_ASSIGNMENT = re.compile(r"^\s*(?:export\s+)?([A-Za-z_][A-Za-z0-9_]*)\s*=")
_PLAIN_VALUE = re.compile(r"[A-Za-z0-9_\-.:/@+=~,%]*")
_CODE = re.compile(r"`([^`]+)`")
PROBE_TIMEOUT_S = 5.0


# --- where .env lives ------------------------------------------------------------------------


def repo_root(start: str | os.PathLike[str] | None = None) -> Path | None:
    """The first folder from `start` upwards holding `.git` or `pyproject.toml` (the same rule
    `find_env_file` stops at), or None outside a repository."""
    here = Path(start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        if (folder / ".git").exists() or (folder / "pyproject.toml").is_file():
            return folder
    return None


def default_env_path(start: str | os.PathLike[str] | None = None) -> Path:
    """`<repo root>/.env`, where `load_settings()` finds it from any notebook; the working
    folder's `.env` outside a repository."""
    return (repo_root(start) or Path(start or Path.cwd()).resolve()) / ".env"


def file_mode(path: str | os.PathLike[str]) -> str:
    """Permission bits in octal, as `chmod` takes them: '0600' is read and write for the
    owner only."""
    return f"{stat.S_IMODE(os.stat(path).st_mode):04o}"


# --- writing .env ----------------------------------------------------------------------------


def _quote(value: str) -> str:
    if _PLAIN_VALUE.fullmatch(value):
        return value
    if "'" not in value:
        return f"'{value}'"  # python-dotenv takes single-quoted values literally
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def write_env_file(
    path: str | os.PathLike[str], values: Mapping[str, str | None]
) -> tuple[list[str], list[str]]:
    """Set (or, with None, remove) variables in a `.env`, keeping every other line as it was.

    The file is written next to itself and moved into place, created with mode 0600 and
    chmod-ed to 0600, so a secret is never readable by other users, not even for a moment.
    Returns (variables written, variables removed).
    """
    target = Path(os.path.realpath(Path(path).expanduser()))
    old_lines = target.read_text(encoding="utf-8").splitlines() if target.is_file() else []
    pending = dict(values)
    written: list[str] = []
    removed: list[str] = []
    new_lines: list[str] = []
    for line in old_lines:
        match = _ASSIGNMENT.match(line)
        name = match.group(1) if match else None
        if name is None or name not in values:
            new_lines.append(line)
            continue
        if name in pending:  # the first assignment is replaced in place
            value = pending.pop(name)
            if value is None:
                removed.append(name)
            else:
                new_lines.append(f"{name}={_quote(value)}")
                written.append(name)
        # later duplicates are dropped: python-dotenv would let them win
    for name, value in pending.items():
        if value is not None:
            new_lines.append(f"{name}={_quote(value)}")
            written.append(name)

    text = "\n".join(new_lines) + ("\n" if new_lines else "")
    target.parent.mkdir(parents=True, exist_ok=True)
    temporary = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.fchmod(fd, 0o600)  # O_CREAT's mode only applies to new files, and umask narrows it
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(temporary, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise
    os.chmod(target, 0o600)
    return written, removed


# --- checking, as `python -m stt_agent check` does -----------------------------------------


@dataclass(frozen=True)
class CheckReport:
    """Problems with their fix, probe results and the mode that will run. No secret inside
    survives `str()` or `to_html()`: settings mask them and probes never quote them."""

    settings: Settings
    problems: list[Problem]
    probes: list[ProbeResult]
    mode: str
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """What `check` exits 0 for: no blocking problem and every configured probe passed."""
        return not any(p.blocking for p in self.problems) and all(
            r.ok for r in self.probes if self._configured(r)
        )

    def _configured(self, result: ProbeResult) -> bool:
        if result.service == "AssemblyAI":
            return bool(self.settings.assemblyai_api_key)
        return self.settings.has_livekit

    def _probe_mark(self, result: ProbeResult) -> str:
        if not self._configured(result):
            return "·"
        return "✓" if result.ok else "✗"

    def rows(self) -> list[tuple[str, str, str]]:
        """The settings that are set, masked, with where each came from."""
        return [row for row in self.settings.as_table() if row[2] != "default"]

    def __str__(self) -> str:
        where = self.settings.env_file or "no .env file (environment variables only)"
        lines = [f"Settings from: {where}"]
        for var, shown, source in self.rows():
            lines.append(f"  {var:<30} {shown:<42} ({source})")
        if not self.rows():
            lines.append("  (nothing set: the defaults apply)")
        lines.append("")
        if self.problems:
            lines.append("Problems:")
            for p in self.problems:
                lines.append(f"  ✗ {p.variable}: {p.message}\n      fix: {p.fix}")
        else:
            lines.append("No problems found in the settings.")
        lines.append("")
        lines.append(f"Probes ({PROBE_TIMEOUT_S:g} s timeout):")
        for r in self.probes:
            lines.append(f"  {self._probe_mark(r)} {r.service}: {r.message}")
        lines.append("")
        lines.append(self.mode)
        lines.extend(self.notes)
        return "\n".join(lines)

    def to_html(self) -> str:
        esc = html.escape
        where = esc(str(self.settings.env_file or "no .env file (environment variables only)"))
        table = (
            "".join(
                f"<tr><td><code>{esc(v)}</code></td><td><code>{esc(s)}</code></td>"
                f"<td style='color:#57606a'>{esc(src)}</td></tr>"
                for v, s, src in self.rows()
            )
            or "<tr><td colspan=3>nothing set: the defaults apply</td></tr>"
        )
        if self.problems:
            problems = "".join(
                f"<li><b>{esc(p.variable)}</b>: {esc(p.message)}<br>"
                f"<span style='color:#1a7f37'>fix: {esc(p.fix)}</span></li>"
                for p in self.problems
            )
            problems = f"<ul style='margin:2px 0'>{problems}</ul>"
        else:
            problems = "<div>No problems found in the settings.</div>"
        colours = {"✓": "#1a7f37", "✗": "#cf222e", "·": "#57606a"}
        probes = "".join(
            f"<li><span style='color:{colours[self._probe_mark(r)]}'>{self._probe_mark(r)}</span>"
            f" <b>{esc(r.service)}</b>: {esc(r.message)}</li>"
            for r in self.probes
        )
        notes = "".join(
            "<div style='color:#9a6700'>" + _CODE.sub(r"<code>\1</code>", esc(n)) + "</div>"
            for n in self.notes
        )
        verdict_colour = "#1a7f37" if self.ok else "#cf222e"
        return (
            "<div class='stt-check' style='font-size:13px;line-height:1.5'>"
            f"<div style='color:#57606a'>Settings from {where}</div>"
            f"<table style='margin:4px 0'>{table}</table>"
            f"{problems}"
            f"<div style='margin-top:4px'>Probes ({PROBE_TIMEOUT_S:g} s timeout):</div>"
            f"<ul style='margin:2px 0'>{probes}</ul>"
            f"<div style='color:{verdict_colour};font-weight:600'>{esc(self.mode)}</div>"
            f"{notes}</div>"
        )

    def _repr_html_(self) -> str:
        return self.to_html()


async def _safe_probe(
    probe: Any, settings: Settings, service: str, timeout_s: float
) -> ProbeResult:
    try:
        # The probes bound their own network calls; the outer limit covers DNS and set-up.
        return await asyncio.wait_for(probe(settings, timeout_s=timeout_s), timeout_s + 2)
    except TimeoutError:
        return ProbeResult(service, False, f"no answer within {timeout_s:g} s")
    except Exception as e:  # a malformed URL, say: the class name is enough, never the text
        return ProbeResult(service, False, f"could not be probed ({type(e).__name__})")


def _notes(settings: Settings, probes: list[ProbeResult]) -> list[str]:
    by_service = {r.service: r for r in probes}
    notes = []
    livekit = by_service.get("LiveKit server")
    if settings.has_livekit and livekit is not None and not livekit.ok:
        notes.append(
            "The LiveKit server cannot be used right now, so the notebooks fall back to local "
            "mode (audio from files, arrays or the microphone). To fix it: start "
            "`livekit-server --dev` (see 02_credentials) or correct LIVEKIT_URL, "
            "LIVEKIT_API_KEY and LIVEKIT_API_SECRET."
        )
    assemblyai = by_service.get("AssemblyAI")
    if settings.engine == "assemblyai" and assemblyai is not None and not assemblyai.ok:
        notes.append(
            "AssemblyAI is the selected engine but cannot be used right now, so transcribing "
            "with it will fail. To fix it: paste the key again from the AssemblyAI dashboard "
            "and check the network, or set STT_AGENT_ENGINE=local to use the local engine."
        )
    return notes


async def _probe_livekit_quietly(settings: Settings, timeout_s: float) -> ProbeResult:
    with warnings.catch_warnings():
        # `livekit-server --dev`'s secret is the word "secret": PyJWT's key-length advice is
        # right for production keys and only noise for the dev server.
        warnings.simplefilter("ignore", InsecureKeyLengthWarning)
        return await probe_livekit(settings, timeout_s=timeout_s)


async def check_settings(
    env_file: str | os.PathLike[str] | None = None,
    *,
    settings: Settings | None = None,
    timeout_s: float = PROBE_TIMEOUT_S,
) -> CheckReport:
    """What `python -m stt_agent check` reports, as an object a notebook can show.

    Never raises for bad settings or unreachable services: they are what it reports.
    """
    if settings is None:
        settings = load_settings(env_file)
    probes = list(
        await asyncio.gather(
            _safe_probe(_probe_livekit_quietly, settings, "LiveKit server", timeout_s),
            _safe_probe(probe_assemblyai, settings, "AssemblyAI", timeout_s),
        )
    )
    return CheckReport(
        settings=settings,
        problems=settings.problems(),
        probes=probes,
        mode=settings.describe_mode(),
        notes=_notes(settings, probes),
    )


# --- is .env kept out of git? ------------------------------------------------------------------


@dataclass(frozen=True)
class GitIgnoreStatus:
    path: Path
    gitignore: Path | None
    listed: bool  # `.gitignore` at the repository root has a line for `.env`
    git_output: str  # what `git check-ignore -v` said, or why it did not run
    ignored: bool | None  # git's verdict; None when git is missing or this is no git repository

    def __str__(self) -> str:
        if self.gitignore is None:
            listed = "no .gitignore at the repository root"
        else:
            listed = f"{self.gitignore} {'lists' if self.listed else 'does NOT list'} .env"
        verdict = {
            True: "git will never commit it.",
            False: "WARNING: git would commit it; add a line `.env` to .gitignore.",
            None: "",
        }[self.ignored]
        return f"{listed}\ngit check-ignore: {self.git_output}\n{verdict}".rstrip()


def gitignore_status(path: str | os.PathLike[str] | None = None) -> GitIgnoreStatus:
    """Whether the `.env` at `path` (default: the repo root's) is git-ignored, asked two ways:
    the `.gitignore` file and `git check-ignore -v` (when git is installed)."""
    env_path = Path(path) if path is not None else default_env_path()
    env_path = env_path.expanduser().resolve()
    root = repo_root(env_path.parent)
    gitignore = root / ".gitignore" if root is not None else None
    listed = False
    if gitignore is not None and gitignore.is_file():
        patterns = {line.strip() for line in gitignore.read_text(encoding="utf-8").splitlines()}
        listed = bool(patterns & {".env", "/.env", ".env*", "*.env", "**/.env"})
    elif gitignore is not None:
        gitignore = None

    git = shutil.which("git")
    if git is None:
        return GitIgnoreStatus(env_path, gitignore, listed, "git is not installed", None)
    try:
        run = subprocess.run(
            [git, "-C", str(env_path.parent), "check-ignore", "-v", "--", str(env_path)],
            capture_output=True,
            text=True,
            timeout=5,
        )
    except (OSError, subprocess.TimeoutExpired) as e:
        return GitIgnoreStatus(env_path, gitignore, listed, f"could not run ({e})", None)
    if run.returncode == 0:
        return GitIgnoreStatus(env_path, gitignore, listed, run.stdout.strip(), True)
    if run.returncode == 1:
        return GitIgnoreStatus(env_path, gitignore, listed, "no rule matches (exit 1)", False)
    reason = (run.stderr.strip().splitlines() or ["failed"])[0]
    if "not a git repository" in reason:
        reason = "not inside a git repository, so there is nothing to commit it to"
    return GitIgnoreStatus(env_path, gitignore, listed, reason, None)


# --- the widget --------------------------------------------------------------------------------


def _in_colab() -> bool:
    return "google.colab" in sys.modules


class CredentialsForm(widgets.VBox):
    """Text and password fields for the tutorial's keys, Save (writes `.env`, mode 0600) and
    Check buttons, and the check results inline.

    Leave a password field empty to keep the secret already saved; text fields show and save
    what is in the file. After Save the password fields are emptied, so no secret is left in
    the widget (and so in a saved notebook's widget state). In Google Colab the form points to
    the Colab secrets panel instead, which `load_settings()` reads.
    """

    def __init__(
        self,
        env_file: str | os.PathLike[str] | None = None,
        *,
        timeout_s: float = PROBE_TIMEOUT_S,
        in_colab: bool | None = None,
    ) -> None:
        target = Path(env_file).expanduser() if env_file is not None else default_env_path()
        self.path = (target / ".env" if target.is_dir() else target).resolve()
        self.timeout_s = timeout_s
        self.in_colab = _in_colab() if in_colab is None else in_colab
        self.last_report: CheckReport | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        try:
            self._loop: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
        except RuntimeError:
            self._loop = None

        saved = self._saved_values()
        style = {"description_width": "150px"}
        layout = widgets.Layout(width="560px")
        self.fields: dict[str, widgets.Text] = {}
        for name, label, secret in FORM_VARIABLES:
            kind = widgets.Password if secret else widgets.Text
            placeholder = _PLACEHOLDERS[name]
            if secret and saved.get(name):
                placeholder = "saved in the file: leave empty to keep it"
            self.fields[name] = kind(
                value="" if secret else saved.get(name, ""),
                description=label,
                placeholder=placeholder,
                style=style,
                layout=layout,
            )
        self.livekit_url = self.fields["LIVEKIT_URL"]
        self.livekit_api_key = self.fields["LIVEKIT_API_KEY"]
        self.livekit_api_secret = self.fields["LIVEKIT_API_SECRET"]
        self.assemblyai_api_key = self.fields["ASSEMBLYAI_API_KEY"]

        self.save_button = widgets.Button(
            description="Save", button_style="primary", icon="save", tooltip=f"write {self.path}"
        )
        self.check_button = widgets.Button(description="Check", icon="stethoscope")
        self.save_button.on_click(lambda _: self._spawn(self._save_clicked()))
        self.check_button.on_click(lambda _: self._spawn(self._check_clicked()))
        self.header = widgets.HTML()
        self.results = widgets.HTML()

        if self.in_colab:
            self.header.value = (
                "<div style='font-size:13px'><b>You are in Google Colab.</b> Don't write a "
                "<code>.env</code> here: open the <b>Secrets</b> panel (the key icon on the "
                "left), add LIVEKIT_URL, LIVEKIT_API_KEY, LIVEKIT_API_SECRET and "
                "ASSEMBLYAI_API_KEY, and allow this notebook to read them. "
                "<code>load_settings()</code> reads Colab secrets by itself. Then press Check."
                "</div>"
            )
            children: list[widgets.Widget] = [self.header, self.check_button, self.results]
        else:
            self.header.value = (
                f"<div style='font-size:13px;color:#57606a'>Saves to <code>"
                f"{html.escape(str(self.path))}</code> (mode 0600, other lines kept). Secrets "
                "are never shown again: leave a password field empty to keep the saved one."
                "</div>"
            )
            buttons = widgets.HBox([self.save_button, self.check_button])
            children = [self.header, *self.fields.values(), buttons, self.results]
        super().__init__(children)
        self.add_class("stt-credentials-form")

    def _saved_values(self) -> dict[str, str]:
        if not self.path.is_file():
            return {}
        try:
            return {k: v for k, v in dotenv_values(self.path).items() if v}
        except (OSError, UnicodeDecodeError):
            return {}

    # --- actions ---------------------------------------------------------------------------

    def values_to_save(self) -> dict[str, str | None]:
        """What Save writes: text fields as shown (empty removes the line), password fields
        only when something was typed. Pasted values lose surrounding white space."""
        values: dict[str, str | None] = {}
        for name, _, secret in FORM_VARIABLES:
            typed = self.fields[name].value.strip()
            if secret and not typed:
                continue
            values[name] = typed or None
        return values

    async def save(self) -> CheckReport:
        """Write `.env`, empty the password fields, then check the saved settings."""
        if self.in_colab:
            raise RuntimeError("in Colab, use the Secrets panel instead of a .env file")
        written, removed = write_env_file(self.path, self.values_to_save())
        for name, _, secret in FORM_VARIABLES:
            if secret:
                self.fields[name].value = ""
                if name in written or self._saved_values().get(name):
                    self.fields[name].placeholder = "saved in the file: leave empty to keep it"
        summary = f"Saved {', '.join(written) or 'nothing new'} to {self.path} (mode "
        summary += f"{file_mode(self.path)})"
        if removed:
            summary += f"; removed {', '.join(removed)}"
        return await self.check(saved=summary + ".")

    async def check(self, *, saved: str | None = None) -> CheckReport:
        """Check the saved file (or Colab secrets) and show the result under the form."""
        lead = f"<div style='color:#1a7f37'>{html.escape(saved)}</div>" if saved else ""
        self.results.value = (
            f"{lead}<div style='color:#57606a'>Checking (up to {self.timeout_s:g} s)…</div>"
        )
        env_file = None if self.in_colab or not self.path.is_file() else self.path
        try:
            report = await check_settings(env_file, timeout_s=self.timeout_s)
        except Exception as e:
            self.results.value = (
                f"{lead}<div style='color:#cf222e'>Could not read the settings "
                f"({html.escape(type(e).__name__)}).</div>"
            )
            raise
        self.last_report = report
        self.results.value = lead + report.to_html()
        return report

    # --- button plumbing ------------------------------------------------------------------

    def _spawn(self, coro: Any) -> None:
        """Run a coroutine on the kernel's loop from a click (which may come without one)."""
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            loop = None
        if loop is not None:
            task = loop.create_task(coro)
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        elif self._loop is not None and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self._spawn, coro)
        else:
            coro.close()
            self.results.value = "<div style='color:#cf222e'>No event loop to run on.</div>"

    async def _save_clicked(self) -> None:
        self.save_button.disabled = True
        try:
            await self.save()
        except OSError as e:
            self.results.value = (
                f"<div style='color:#cf222e'>Could not write {html.escape(str(self.path))}: "
                f"{html.escape(e.strerror or type(e).__name__)}.</div>"
            )
        except Exception as e:
            self.results.value = (
                f"<div style='color:#cf222e'>Save failed ({html.escape(type(e).__name__)}).</div>"
            )
        finally:
            self.save_button.disabled = False

    async def _check_clicked(self) -> None:
        self.check_button.disabled = True
        try:
            with contextlib.suppress(Exception):
                await self.check()
        finally:
            self.check_button.disabled = False
