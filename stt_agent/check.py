"""The one settings check: what is wrong (with its fix), whether the services answer, which
mode will run.

`python -m stt_agent check` prints it, the credentials form shows it as HTML, and the worker
commands (`dev`, `start`, `connect`) ask `worker_preflight` before LiveKit's CLI takes over.
Nothing here raises for bad settings or unreachable services: they are what it reports. No
secret survives `str()` or `to_html()`: settings mask them and probes never quote them.
"""

from __future__ import annotations

import asyncio
import html
import os
import re
from collections.abc import Awaitable, Callable, Collection
from dataclasses import dataclass, field
from typing import Literal

from .config import Settings, load_settings
from .probes import ProbeResult, probe_assemblyai, probe_livekit
from .validation import Problem

__all__ = ["PROBE_TIMEOUT_S", "CheckReport", "check_settings", "worker_preflight"]

PROBE_TIMEOUT_S = 5.0
# The probes bound their own network calls; this margin covers name resolution and set-up.
_SET_UP_MARGIN_S = 2.0
Service = Literal["livekit", "assemblyai"]
_CODE = re.compile(r"`([^`]+)`")
_MARK_COLOURS = {"✓": "#1a7f37", "✗": "#cf222e", "·": "#57606a"}
_NO_FILE = "no .env found (environment variables only)"


@dataclass(frozen=True)
class CheckReport:
    """Problems with their fix, probe results and the mode that will run."""

    settings: Settings
    problems: list[Problem]
    probes: list[ProbeResult]
    mode: str
    notes: list[str] = field(default_factory=list)
    timeout_s: float = PROBE_TIMEOUT_S

    @property
    def ok(self) -> bool:
        """What `check` exits 0 for: no blocking problem and every configured probe passed."""
        blocked = any(p.blocking for p in self.problems)
        return not blocked and all(r.ok for r in self.probes if r.configured)

    @staticmethod
    def mark(result: ProbeResult) -> str:
        """✓ answered, ✗ failed, · nothing to probe (not configured, which is fine)."""
        if not result.configured:
            return "·"
        return "✓" if result.ok else "✗"

    def __str__(self) -> str:
        table = self.settings.as_table()
        width = max(len(var) for var, _, _ in table)
        lines = [f"Settings from: {self.settings.env_file or _NO_FILE}"]
        lines += [f"  {var:<{width}}  {shown or '-':<40}  ({src})" for var, shown, src in table]
        lines.append("")
        if self.problems:
            lines.append("Problems:")
            for p in self.problems:
                lines.append(f"  ✗ {p.variable}: {p.message}\n      fix: {p.fix}")
        else:
            lines.append("No problems found in the settings.")
        lines += ["", f"Probes ({self.timeout_s:g} s timeout):"]
        lines += [f"  {self.mark(r)} {r.service}: {r.message}" for r in self.probes]
        lines += ["", self.mode, *self.notes]
        if not self.ok:
            lines.append("The configured mode cannot run: fix the problems or failed probes above.")
        return "\n".join(lines)

    def to_html(self) -> str:
        esc = html.escape
        where = esc(str(self.settings.env_file or _NO_FILE))
        rows = [row for row in self.settings.as_table() if row[2] != "default"]
        table = (
            "".join(
                f"<tr><td><code>{esc(v)}</code></td><td><code>{esc(s)}</code></td>"
                f"<td style='color:#57606a'>{esc(src)}</td></tr>"
                for v, s, src in rows
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
        probes = "".join(
            f"<li><span style='color:{_MARK_COLOURS[self.mark(r)]}'>{self.mark(r)}</span>"
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
            f"<div style='margin-top:4px'>Probes ({self.timeout_s:g} s timeout):</div>"
            f"<ul style='margin:2px 0'>{probes}</ul>"
            f"<div style='color:{verdict_colour};font-weight:600'>{esc(self.mode)}</div>"
            f"{notes}</div>"
        )

    def _repr_html_(self) -> str:
        return self.to_html()


Probe = Callable[[Settings, float], Awaitable[ProbeResult]]


async def _safe_probe(
    probe: Probe, settings: Settings, service: str, where: str, timeout_s: float
) -> ProbeResult:
    try:
        return await asyncio.wait_for(probe(settings, timeout_s), timeout_s + _SET_UP_MARGIN_S)
    except TimeoutError:
        message = f"no answer from {where} within {timeout_s:g} s: is it running?"
        return ProbeResult(service, False, message)
    except Exception as e:  # a malformed URL, say: the class name is enough, never the text
        return ProbeResult(service, False, f"could not be probed ({type(e).__name__})")


def _notes(settings: Settings, probes: list[ProbeResult]) -> list[str]:
    failed = {r.service for r in probes if r.configured and not r.ok}
    notes = []
    if "LiveKit server" in failed:
        notes.append(
            "The LiveKit server cannot be used right now, so the notebooks fall back to local "
            "mode (audio from files, arrays or the microphone). To fix it: start "
            "`livekit-server --dev` (see 02_credentials) or correct LIVEKIT_URL, "
            "LIVEKIT_API_KEY and LIVEKIT_API_SECRET."
        )
    if "AssemblyAI" in failed and settings.engine == "assemblyai":
        notes.append(
            "AssemblyAI is the selected engine but cannot be used right now, so transcribing "
            "with it will fail. To fix it: paste the key again from the AssemblyAI dashboard "
            "and check the network, or set STT_AGENT_ENGINE=local to use the local engine."
        )
    return notes


async def check_settings(
    env_file: str | os.PathLike[str] | None = None,
    *,
    settings: Settings | None = None,
    timeout_s: float = PROBE_TIMEOUT_S,
    services: Collection[Service] = ("livekit", "assemblyai"),
) -> CheckReport:
    """Validate the settings (read from `env_file`, or given), probe the `services` at the same
    time with short timeouts, and say which mode will run.

    Raises only when the settings cannot be read at all (`ConfigError`: a named file that is
    missing, a file that is not text).
    """
    if settings is None:
        settings = load_settings(env_file)
    probes: list[Awaitable[ProbeResult]] = []
    if "livekit" in services:
        url = settings.livekit_url
        probes.append(_safe_probe(probe_livekit, settings, "LiveKit server", url, timeout_s))
    if "assemblyai" in services:
        url = settings.assemblyai_base_url
        probes.append(_safe_probe(probe_assemblyai, settings, "AssemblyAI", url, timeout_s))
    results = list(await asyncio.gather(*probes))
    return CheckReport(
        settings=settings,
        problems=settings.problems(),
        probes=results,
        mode=settings.describe_mode(),
        notes=_notes(settings, results),
        timeout_s=timeout_s,
    )


async def worker_preflight(settings: Settings, timeout_s: float = PROBE_TIMEOUT_S) -> str | None:
    """Why a LiveKit worker cannot register with these settings (one line), or None when it can.

    LiveKit's own CLI would print a traceback for a missing URL and retry an unreachable
    server for minutes; this is the same check as `check`, narrowed to the LiveKit server.
    """
    given = {
        "LIVEKIT_URL": settings.livekit_url,
        "LIVEKIT_API_KEY": settings.livekit_api_key,
        "LIVEKIT_API_SECRET": settings.livekit_api_secret,
    }
    missing = [var for var, value in given.items() if not value]
    if missing:
        verb = "is" if len(missing) == 1 else "are"
        return (
            f"needs a LiveKit server, but {', '.join(missing)} {verb} not set: put them in .env "
            "(or the environment), or pass --url/--api-key/--api-secret; with no server, run "
            "`python -m stt_agent server --dev` in another terminal and this command again"
        )
    report = await check_settings(settings=settings, timeout_s=timeout_s, services=["livekit"])
    for p in report.problems:
        if p.blocking and p.variable.startswith("LIVEKIT_"):
            return str(p)
    failed = [r for r in report.probes if not r.ok]
    return f"{failed[0].service}: {failed[0].message}" if failed else None
