"""A form for the four keys of the tutorial that writes `.env` safely, then checks the result.

`CredentialsForm()` shows LIVEKIT_URL and LIVEKIT_API_KEY as text and LIVEKIT_API_SECRET and
ASSEMBLYAI_API_KEY as masked password fields. Save writes `.env` (`envfile.write_env_file`:
mode 0600, other lines kept), clears the password fields so no secret stays in the notebook's
widget state, and shows what `python -m stt_agent check` would say (`check.check_settings`).
Nothing here validates, probes or writes files on its own.
"""

from __future__ import annotations

import asyncio
import contextlib
import html
import os
from collections.abc import Coroutine
from pathlib import Path
from typing import Any

import ipywidgets as widgets
from dotenv import dotenv_values

from .. import config
from ..check import PROBE_TIMEOUT_S, CheckReport, check_settings
from ..envfile import default_env_path, file_mode, write_env_file
from ..errors import ConfigError
from ..scrub import describe

__all__ = ["FORM_VARIABLES", "CredentialsForm"]

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
_KEPT = "saved in the file: leave empty to keep it"


# ipywidgets ships no type information, so its classes are `Any` to mypy.
class CredentialsForm(widgets.VBox):  # type: ignore[misc]  # ipywidgets ships no types
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
        self.in_colab = config.in_colab() if in_colab is None else in_colab
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
                placeholder = _KEPT
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
            return {k: v for k, v in dotenv_values(self.path).items() if v is not None and v}
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
            raise ConfigError(
                "in Google Colab settings live in the Secrets panel (the key icon on the left), "
                "not in a .env file: add them there and press Check"
            )
        written, removed = write_env_file(self.path, self.values_to_save())
        for name, _, secret in FORM_VARIABLES:
            if secret:
                self.fields[name].value = ""
                if name in written or self._saved_values().get(name):
                    self.fields[name].placeholder = _KEPT
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
        except ConfigError as e:  # a file that is not text: its message says what to do
            self.results.value = f"{lead}<div style='color:#cf222e'>{html.escape(str(e))}</div>"
            raise
        self.last_report = report
        self.results.value = lead + report.to_html()
        return report

    # --- button plumbing ------------------------------------------------------------------

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
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
        typed = [value for value in self.values_to_save().values() if value]
        try:
            await self.save()
        except OSError as e:
            self.results.value = (
                f"<div style='color:#cf222e'>Could not write {html.escape(str(self.path))}: "
                f"{html.escape(e.strerror or type(e).__name__)}.</div>"
            )
        except ConfigError as e:
            self.results.value = f"<div style='color:#cf222e'>{html.escape(str(e))}</div>"
        except Exception as e:  # whatever it says, the typed values are scrubbed out
            failed = html.escape(describe(e, typed))
            self.results.value = f"<div style='color:#cf222e'>Save failed ({failed}).</div>"
        finally:
            self.save_button.disabled = False

    async def _check_clicked(self) -> None:
        self.check_button.disabled = True
        try:
            with contextlib.suppress(Exception):
                await self.check()
        finally:
            self.check_button.disabled = False
