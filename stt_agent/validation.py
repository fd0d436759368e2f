"""What is wrong with a set of settings, each problem phrased so a newcomer can act on it.

Any string in any setting gives either nothing (it is usable) or a `Problem` naming the
variable, what is wrong and the fix; nothing here raises. No message ever quotes a secret.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import ParseResult, urlparse

if TYPE_CHECKING:
    from .config import Settings

__all__ = ["Problem", "livekit_problems", "parse_url", "problems"]

_PLACEHOLDER = re.compile(r"^(<.*>|x+|your[-_ ].*|changeme|replace[-_ ]?me|\.\.\.|todo)$", re.I)
# A Hugging Face repository id, which faster-whisper downloads like a model name.
_REPO_ID = re.compile(r"^[\w.-]+/[\w.-]+$")
_LIVEKIT_URL_FIX = (
    "use wss://<project>.livekit.cloud for LiveKit Cloud or ws://localhost:7880 for "
    "`livekit-server --dev`."
)
# Keys and secrets are handled by `_malformed`; these hold free text the kit passes on.
_TEXT_VARIABLES = {
    "LIVEKIT_URL": "livekit_url",
    "ASSEMBLYAI_BASE_URL": "assemblyai_base_url",
    "ASSEMBLYAI_SPEECH_MODEL": "assemblyai_speech_model",
    "ASSEMBLYAI_KEYTERMS": "assemblyai_keyterms",
    "ASSEMBLYAI_MODE": "assemblyai_mode",
    "ASSEMBLYAI_LANGUAGES": "assemblyai_languages",
    "STT_AGENT_ENGINE": "engine_choice",
    "STT_AGENT_LOCAL_MODEL": "local_model",
    "STT_AGENT_AGENT_NAME": "agent_name",
}
# Values `load_settings` could not read as their type: (what was expected, the fix).
_UNREADABLE = {
    "ASSEMBLYAI_FORMAT_TURNS": ("true or false", "use true or false (also: 1/0, yes/no, on/off)."),
    "ASSEMBLYAI_SPEAKER_LABELS": (
        "true or false",
        "use true or false (also: 1/0, yes/no, on/off).",
    ),
    "ASSEMBLYAI_MIN_TURN_SILENCE_MS": (
        "a whole number of milliseconds",
        "use a number such as 400, or unset it for the service's default.",
    ),
    "ASSEMBLYAI_MAX_TURN_SILENCE_MS": (
        "a whole number of milliseconds",
        "use a number such as 1280, or unset it for the service's default.",
    ),
}


@dataclass(frozen=True)
class Problem:
    """One thing wrong with the settings, phrased so a newcomer can act on it."""

    variable: str
    message: str
    fix: str
    blocking: bool = True

    def __str__(self) -> str:
        return f"{self.variable}: {self.message} Fix: {self.fix}"


def _shown(value: str, limit: int = 60) -> str:
    """A value as a problem quotes it: repr (control characters visible), cut short."""
    return repr(value) if len(value) <= limit else repr(value[:limit]) + f"… ({len(value)} chars)"


def parse_url(url: str) -> ParseResult | None:
    """The URL's parts, or None when Python's own parser (or its host/port reading) refuses it,
    or it holds characters no address has (spaces, control characters)."""
    if not url.isprintable() or any(c.isspace() for c in url):
        return None  # urlparse would silently drop tabs and line breaks
    try:
        parsed = urlparse(url)
        _ = parsed.hostname, parsed.port  # both raise ValueError on a malformed netloc
    except ValueError:
        return None
    return parsed


def problems(settings: Settings) -> list[Problem]:
    unprintable = _unprintable(settings)
    skip = {p.variable for p in unprintable}
    found = [
        *unprintable,
        *livekit_problems(settings),
        *_assemblyai_problems(settings, skip),
        *_kit_problems(settings, skip),
    ]
    negative = {
        var
        for var, value in (
            ("ASSEMBLYAI_MIN_TURN_SILENCE_MS", settings.assemblyai_min_turn_silence_ms),
            ("ASSEMBLYAI_MAX_TURN_SILENCE_MS", settings.assemblyai_max_turn_silence_ms),
        )
        if value is not None and value < 0
    }
    for variable in sorted((settings.unreadable | negative) & set(_UNREADABLE)):
        expected, fix = _UNREADABLE[variable]
        found.append(Problem(variable, f"is not {expected}.", fix))
    return found


def _unprintable(settings: Settings) -> list[Problem]:
    found = []
    for variable, attr in _TEXT_VARIABLES.items():
        value = getattr(settings, attr)
        text = ",".join(value) if isinstance(value, tuple) else str(value)
        if not text.isprintable():
            found.append(
                Problem(
                    variable,
                    "contains a line break or another invisible control character.",
                    "type the value again (a paste from a terminal or a PDF can bring them).",
                )
            )
    return found


def livekit_problems(settings: Settings) -> list[Problem]:
    found: list[Problem] = []
    url, key, secret = settings.livekit_url, settings.livekit_api_key, settings.livekit_api_secret
    if not (url or key or secret):
        return found
    if url:
        found += _livekit_url_problems(url)
    else:
        found.append(
            Problem(
                "LIVEKIT_URL",
                "is empty while API credentials are set.",
                "copy the WebSocket URL from your LiveKit project settings.",
            )
        )
    if secret and not key:
        found.append(
            Problem(
                "LIVEKIT_API_KEY",
                "is empty but LIVEKIT_API_SECRET is set: a secret is useless without its key.",
                "copy the API key shown next to the secret in your LiveKit project.",
            )
        )
    if key and not secret:
        found.append(
            Problem(
                "LIVEKIT_API_SECRET",
                "is empty but LIVEKIT_API_KEY is set.",
                "copy the secret that belongs to this key (LiveKit shows it once when the "
                "key is created; create a new key if you lost it). For `livekit-server --dev` "
                "it is 'secret'.",
            )
        )
    if key:
        found += _malformed("LIVEKIT_API_KEY", key, min_len=3)
    if secret:
        found += _malformed("LIVEKIT_API_SECRET", secret.reveal(), min_len=6)
    return found


def _livekit_url_problems(url: str) -> list[Problem]:
    parsed = parse_url(url)
    if parsed is None:
        message = f"{_shown(url)} is not a valid URL (a bracket, port or character out of place)."
        return [Problem("LIVEKIT_URL", message, _LIVEKIT_URL_FIX)]
    if parsed.username or parsed.password:
        return [
            Problem(
                "LIVEKIT_URL",
                "holds a user name or password, which LiveKit does not use.",
                "remove the `user:password@` part: the server is reached with "
                "LIVEKIT_API_KEY and LIVEKIT_API_SECRET.",
            )
        ]
    if "<" in url or ">" in url:
        # `wss://<project>.livekit.cloud` from .env.example parses as a valid URL.
        return [
            Problem(
                "LIVEKIT_URL",
                f"{_shown(url)} still holds the placeholder from .env.example.",
                "replace <project> with your project's name from the LiveKit dashboard, "
                "or use ws://localhost:7880 for `livekit-server --dev`.",
            )
        ]
    if parsed.scheme not in ("ws", "wss", "http", "https") or not parsed.hostname:
        message = f"{_shown(url)} is not a LiveKit server address."
        return [Problem("LIVEKIT_URL", message, _LIVEKIT_URL_FIX)]
    return []


def _assemblyai_problems(settings: Settings, skip: set[str]) -> list[Problem]:
    found: list[Problem] = []
    if settings.assemblyai_api_key:
        found += _malformed("ASSEMBLYAI_API_KEY", settings.assemblyai_api_key.reveal(), min_len=16)
    elif settings.engine_choice == "assemblyai":
        found.append(
            Problem(
                "ASSEMBLYAI_API_KEY",
                "is empty but STT_AGENT_ENGINE=assemblyai asks for AssemblyAI.",
                "paste your key from the AssemblyAI dashboard, or set STT_AGENT_ENGINE=local.",
            )
        )
    found += [p for p in _assemblyai_model_problems(settings) if p.variable not in skip]
    parsed = parse_url(settings.assemblyai_base_url)
    if "ASSEMBLYAI_BASE_URL" not in skip and (
        parsed is None
        or parsed.scheme not in ("ws", "wss")
        or not parsed.hostname
        or parsed.username
        or parsed.password
    ):
        found.append(
            Problem(
                "ASSEMBLYAI_BASE_URL",
                f"{_shown(settings.assemblyai_base_url)} is not a streaming endpoint.",
                "use wss://streaming.assemblyai.com (or wss://streaming.eu.assemblyai.com).",
            )
        )
    return found


def _assemblyai_model_problems(settings: Settings) -> list[Problem]:
    """Model and options against what the installed plugin offers."""
    from .engines.assemblyai import MODES, SPEECH_MODELS, U3_PRO_MODELS

    model, found = settings.assemblyai_speech_model, []
    if model not in SPEECH_MODELS:
        # Which options fit which model cannot be said of an unknown model: that check waits.
        found.append(
            Problem(
                "ASSEMBLYAI_SPEECH_MODEL",
                f"{_shown(model)} is not a speech model the AssemblyAI plugin offers.",
                f"use one of {', '.join(SPEECH_MODELS)}.",
            )
        )
    u3_pro = model in U3_PRO_MODELS or model == "u3-pro"
    for var, value in (
        ("ASSEMBLYAI_MODE", settings.assemblyai_mode),
        ("ASSEMBLYAI_LANGUAGES", ",".join(settings.assemblyai_languages)),
    ):
        if value and not u3_pro and model in SPEECH_MODELS:
            found.append(
                Problem(
                    var,
                    f"only works with the Universal-3 Pro models, not {model}.",
                    f"set ASSEMBLYAI_SPEECH_MODEL to {U3_PRO_MODELS[-1]} or unset {var}.",
                )
            )
    if settings.assemblyai_mode and settings.assemblyai_mode not in MODES:
        found.append(
            Problem(
                "ASSEMBLYAI_MODE",
                f"{_shown(settings.assemblyai_mode)} is not a mode.",
                f"use {', '.join(MODES)}.",
            )
        )
    confidence = settings.assemblyai_end_of_turn_confidence
    unreadable = "ASSEMBLYAI_END_OF_TURN_CONFIDENCE" in settings.unreadable
    # `not 0 <= x <= 1` is also true for NaN
    if unreadable or (confidence is not None and not 0.0 <= confidence <= 1.0):
        found.append(
            Problem(
                "ASSEMBLYAI_END_OF_TURN_CONFIDENCE",
                "is not a probability between 0 and 1.",
                "use a number such as 0.4 (the service's default).",
            )
        )
    return found


def _kit_problems(settings: Settings, skip: set[str]) -> list[Problem]:
    found = []
    engine = settings.engine_choice
    if engine not in ("auto", "local", "assemblyai") and "STT_AGENT_ENGINE" not in skip:
        found.append(
            Problem(
                "STT_AGENT_ENGINE",
                f"{_shown(engine)} is not an engine.",
                "use auto, local or assemblyai.",
            )
        )
    if "STT_AGENT_LOCAL_MODEL" not in skip and not _is_whisper_model(settings.local_model):
        found.append(
            Problem(
                "STT_AGENT_LOCAL_MODEL",
                f"{_shown(settings.local_model)} is neither a faster-whisper model name, a "
                "Hugging Face repository (owner/name) nor an existing folder.",
                "use a name such as tiny.en, base.en or small, or the folder of a "
                "CTranslate2 model; unset it for the bundled tiny.en.",
            )
        )
    if "STT_AGENT_MAX_STREAMS" in settings.sources and (settings.max_streams or 0) < 1:
        found.append(
            Problem(
                "STT_AGENT_MAX_STREAMS",
                "is not a whole number of streams of at least 1.",
                "set it to how many speakers one worker should transcribe, e.g. 4.",
            )
        )
    return found


def _is_whisper_model(name: str) -> bool:
    """faster-whisper's own rule (`WhisperModel`): a folder, a repository id or a known name."""
    if name == "tiny.en" or os.path.isdir(name):  # isdir: False for names the OS refuses
        return True
    if "/" in name:
        return bool(_REPO_ID.fullmatch(name))
    from faster_whisper.utils import available_models

    return name in available_models()


def _malformed(variable: str, value: str, *, min_len: int) -> list[Problem]:
    """What is wrong with a key or secret, never quoting it."""
    stripped = value.strip().strip("'\"")
    # Placeholders first: `<your key>` has a space, but "placeholder" is the useful diagnosis.
    if _PLACEHOLDER.match(stripped):
        return [
            Problem(
                variable,
                "still holds the placeholder from .env.example.",
                "replace it with the real value.",
            )
        ]
    if value != value.strip() or any(c.isspace() for c in value):
        return [
            Problem(variable, "contains spaces or a line break.", "paste it again without them.")
        ]
    if value != stripped:
        return [
            Problem(
                variable, "is wrapped in quotes that are part of the value.", "remove the quotes."
            )
        ]
    if not all("!" <= c <= "~" for c in value):
        return [
            Problem(
                variable,
                "holds characters no key has (accented letters, symbols or control characters).",
                "copy it again from the dashboard, with its copy button if it has one.",
            )
        ]
    if len(value) < min_len:
        return [
            Problem(
                variable,
                f"is only {len(value)} characters long, too short to be real.",
                "copy the whole value.",
            )
        ]
    return []
