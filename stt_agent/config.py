"""Settings from `.env`, the environment and Colab secrets, validated, secrets masked everywhere.

Precedence, lowest first: defaults, the `.env` file, Colab secrets, environment variables.
The `.env` is looked for in the working folder and its parents up to the repository root
(the first folder holding `.git` or `pyproject.toml`), so a notebook in `notebooks/` finds the
repo's `.env` the way `python stt_agent.py dev` in the tutorial finds its own.
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Literal
from urllib.parse import ParseResult, urlparse

from dotenv import dotenv_values

__all__ = [
    "ENV_VARS",
    "Problem",
    "Secret",
    "Settings",
    "find_env_file",
    "load_settings",
]

Engine = Literal["local", "assemblyai"]

# The four variables of the tutorial first, then the kit's own knobs.
ENV_VARS: dict[str, str] = {
    "LIVEKIT_URL": "livekit_url",
    "LIVEKIT_API_KEY": "livekit_api_key",
    "LIVEKIT_API_SECRET": "livekit_api_secret",
    "ASSEMBLYAI_API_KEY": "assemblyai_api_key",
    "ASSEMBLYAI_BASE_URL": "assemblyai_base_url",
    "ASSEMBLYAI_SPEECH_MODEL": "assemblyai_speech_model",
    "ASSEMBLYAI_FORMAT_TURNS": "assemblyai_format_turns",
    "ASSEMBLYAI_MIN_TURN_SILENCE_MS": "assemblyai_min_turn_silence_ms",
    "ASSEMBLYAI_MAX_TURN_SILENCE_MS": "assemblyai_max_turn_silence_ms",
    "ASSEMBLYAI_KEYTERMS": "assemblyai_keyterms",
    "ASSEMBLYAI_END_OF_TURN_CONFIDENCE": "assemblyai_end_of_turn_confidence",
    "ASSEMBLYAI_MODE": "assemblyai_mode",
    "ASSEMBLYAI_LANGUAGES": "assemblyai_languages",
    "ASSEMBLYAI_SPEAKER_LABELS": "assemblyai_speaker_labels",
    "STT_AGENT_ENGINE": "engine_choice",
    "STT_AGENT_LOCAL_MODEL": "local_model",
    "STT_AGENT_AGENT_NAME": "agent_name",
    "STT_AGENT_MAX_STREAMS": "max_streams",
}
_SECRET_FIELDS = {"livekit_api_secret", "assemblyai_api_key"}
_PLACEHOLDER = re.compile(r"^(<.*>|x+|your[-_ ].*|changeme|replace[-_ ]?me|\.\.\.|todo)$", re.I)


class Secret:
    """A string that never shows itself in a repr, str, f-string, log line or traceback.

    Call `.reveal()` at the single place that must hand it to a client library.
    """

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __bool__(self) -> bool:
        return bool(self._value)

    def __len__(self) -> int:
        return len(self._value)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(("Secret", self._value))

    def __repr__(self) -> str:
        return "Secret(<not set>)" if not self._value else f"Secret(<{len(self._value)} chars>)"

    __str__ = __repr__

    def __format__(self, spec: str) -> str:
        return repr(self)

    def __reduce__(self) -> tuple[object, ...]:
        # Pickling would be a quiet way to write the secret somewhere; refuse it.
        raise TypeError("a Secret cannot be pickled")


@dataclass(frozen=True)
class Problem:
    """One thing wrong with the settings, phrased so a newcomer can act on it."""

    variable: str
    message: str
    fix: str
    blocking: bool = True

    def __str__(self) -> str:
        return f"{self.variable}: {self.message} Fix: {self.fix}"


@dataclass(frozen=True)
class Settings:
    livekit_url: str = ""
    livekit_api_key: str = ""
    livekit_api_secret: Secret = field(default_factory=lambda: Secret(""))
    assemblyai_api_key: Secret = field(default_factory=lambda: Secret(""))
    assemblyai_base_url: str = "wss://streaming.assemblyai.com"
    # Universal-Streaming English: the tutorial's model, the cheapest, and the one whose
    # turn-silence settings the notebooks teach. The plugin's own default moved to
    # "universal-3-6-pro"; set ASSEMBLYAI_SPEECH_MODEL to use it.
    assemblyai_speech_model: str = "universal-streaming-english"
    assemblyai_format_turns: bool = True
    assemblyai_min_turn_silence_ms: int | None = None
    assemblyai_max_turn_silence_ms: int | None = None
    assemblyai_keyterms: tuple[str, ...] = ()
    # Universal-Streaming models: how sure the end-of-turn model must be (plugin default 0.4).
    assemblyai_end_of_turn_confidence: float | None = None
    # Universal-3 Pro models: min_latency | balanced | max_accuracy, and languages to steer to.
    assemblyai_mode: str = ""
    assemblyai_languages: tuple[str, ...] = ()
    assemblyai_speaker_labels: bool = False
    engine_choice: str = "auto"
    local_model: str = "tiny.en"
    agent_name: str = ""
    # Streams one worker takes before it tells LiveKit it is full (None: the engine's default).
    max_streams: int | None = None
    env_file: Path | None = None
    sources: Mapping[str, str] = field(default_factory=dict)

    # --- what will run -------------------------------------------------------------------

    @property
    def has_livekit(self) -> bool:
        return bool(self.livekit_url and self.livekit_api_key and self.livekit_api_secret)

    @property
    def engine(self) -> Engine:
        """AssemblyAI when a key is configured (or forced), the local engine otherwise."""
        if self.engine_choice in ("local", "assemblyai"):
            return self.engine_choice  # type: ignore[return-value]
        return "assemblyai" if self.assemblyai_api_key else "local"

    @property
    def mode(self) -> Literal["room", "local"]:
        return "room" if self.has_livekit and not self._livekit_problems() else "local"

    def describe_mode(self) -> str:
        """One sentence saying which mode runs and why, for `check` and the notebooks."""
        if self.mode == "room":
            where = f"the LiveKit server at {self.livekit_url}"
            audio = f"Room mode: audio comes from participants' tracks via {where}"
        elif self.livekit_url or self.livekit_api_key or self.livekit_api_secret:
            audio = (
                "Local mode: the LiveKit settings are incomplete or invalid, so audio comes "
                "from files, arrays or the microphone widget"
            )
        else:
            audio = (
                "Local mode: no LiveKit server configured, so audio comes from files, arrays "
                "or the microphone widget"
            )
        if self.engine == "assemblyai":
            engine = "AssemblyAI streaming transcribes it (ASSEMBLYAI_API_KEY is set)"
        else:
            engine = f"the local engine (faster-whisper {self.local_model}, CPU) transcribes it"
        return f"{audio}; {engine}."

    # --- validation ----------------------------------------------------------------------

    def problems(self) -> list[Problem]:
        return [*self._livekit_problems(), *self._assemblyai_problems(), *self._kit_problems()]

    def _livekit_problems(self) -> list[Problem]:
        found: list[Problem] = []
        url, key, secret = self.livekit_url, self.livekit_api_key, self.livekit_api_secret
        if not (url or key or secret):
            return found
        if url:
            parsed = _parse_url(url)
            if parsed is None:
                found.append(
                    Problem(
                        "LIVEKIT_URL",
                        f"{url!r} is not a valid URL (a bracket, port or character out of place).",
                        "use wss://<project>.livekit.cloud for LiveKit Cloud or "
                        "ws://localhost:7880 for `livekit-server --dev`.",
                    )
                )
            elif parsed.username or parsed.password:
                found.append(
                    Problem(
                        "LIVEKIT_URL",
                        "holds a user name or password, which LiveKit does not use.",
                        "remove the `user:password@` part: the server is reached with "
                        "LIVEKIT_API_KEY and LIVEKIT_API_SECRET.",
                    )
                )
            elif "<" in url or ">" in url:
                # `wss://<project>.livekit.cloud` from .env.example parses as a valid URL.
                found.append(
                    Problem(
                        "LIVEKIT_URL",
                        f"{url!r} still holds the placeholder from .env.example.",
                        "replace <project> with your project's name from the LiveKit dashboard, "
                        "or use ws://localhost:7880 for `livekit-server --dev`.",
                    )
                )
            elif (
                parsed.scheme not in ("ws", "wss", "http", "https")
                or not parsed.hostname
                or any(c.isspace() for c in url)
            ):
                found.append(
                    Problem(
                        "LIVEKIT_URL",
                        f"{url!r} is not a LiveKit server address.",
                        "use wss://<project>.livekit.cloud for LiveKit Cloud or "
                        "ws://localhost:7880 for `livekit-server --dev`.",
                    )
                )
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

    def _assemblyai_problems(self) -> list[Problem]:
        found: list[Problem] = []
        if self.assemblyai_api_key:
            found += _malformed("ASSEMBLYAI_API_KEY", self.assemblyai_api_key.reveal(), min_len=16)
        elif self.engine_choice == "assemblyai":
            found.append(
                Problem(
                    "ASSEMBLYAI_API_KEY",
                    "is empty but STT_AGENT_ENGINE=assemblyai asks for AssemblyAI.",
                    "paste your key from the AssemblyAI dashboard, or set STT_AGENT_ENGINE=local.",
                )
            )
        found += self._assemblyai_model_problems()
        parsed = _parse_url(self.assemblyai_base_url)
        if (
            parsed is None
            or parsed.scheme not in ("ws", "wss")
            or not parsed.hostname
            or parsed.username
            or parsed.password
        ):
            found.append(
                Problem(
                    "ASSEMBLYAI_BASE_URL",
                    f"{self.assemblyai_base_url!r} is not a streaming endpoint.",
                    "use wss://streaming.assemblyai.com (or wss://streaming.eu.assemblyai.com).",
                )
            )
        return found

    def _assemblyai_model_problems(self) -> list[Problem]:
        """Model and options against what the installed plugin offers."""
        from .engines.assemblyai import MODES, SPEECH_MODELS, U3_PRO_MODELS

        model, found = self.assemblyai_speech_model, []
        if model not in SPEECH_MODELS:
            return [
                Problem(
                    "ASSEMBLYAI_SPEECH_MODEL",
                    f"{model!r} is not a speech model the AssemblyAI plugin offers.",
                    f"use one of {', '.join(SPEECH_MODELS)}.",
                )
            ]
        u3_pro = model in U3_PRO_MODELS or model == "u3-pro"
        for var, value in (
            ("ASSEMBLYAI_MODE", self.assemblyai_mode),
            ("ASSEMBLYAI_LANGUAGES", ",".join(self.assemblyai_languages)),
        ):
            if value and not u3_pro:
                found.append(
                    Problem(
                        var,
                        f"only works with the Universal-3 Pro models, not {model}.",
                        f"set ASSEMBLYAI_SPEECH_MODEL to {U3_PRO_MODELS[-1]} or unset {var}.",
                    )
                )
        if self.assemblyai_mode and self.assemblyai_mode not in MODES:
            found.append(
                Problem(
                    "ASSEMBLYAI_MODE",
                    f"{self.assemblyai_mode!r} is not a mode.",
                    f"use {', '.join(MODES)}.",
                )
            )
        confidence = self.assemblyai_end_of_turn_confidence
        if confidence is not None and not 0.0 <= confidence <= 1.0:  # NaN: not a number
            found.append(
                Problem(
                    "ASSEMBLYAI_END_OF_TURN_CONFIDENCE",
                    "is not a probability between 0 and 1.",
                    "use a number such as 0.4 (the service's default).",
                )
            )
        return found

    def _kit_problems(self) -> list[Problem]:
        problems = []
        if self.engine_choice not in ("auto", "local", "assemblyai"):
            problems.append(
                Problem(
                    "STT_AGENT_ENGINE",
                    f"{self.engine_choice!r} is not an engine.",
                    "use auto, local or assemblyai.",
                )
            )
        if "STT_AGENT_MAX_STREAMS" in self.sources and (self.max_streams or 0) < 1:
            problems.append(
                Problem(
                    "STT_AGENT_MAX_STREAMS",
                    "is not a whole number of streams of at least 1.",
                    "set it to how many speakers one worker should transcribe, e.g. 4.",
                )
            )
        return problems

    # --- presentation --------------------------------------------------------------------

    def as_table(self) -> list[tuple[str, str, str]]:
        """(variable, shown value, where it came from) with every secret masked."""
        rows = []
        for var, attr in ENV_VARS.items():
            value = getattr(self, attr)
            if isinstance(value, tuple):
                value = ",".join(value)
            shown = (
                repr(value) if isinstance(value, Secret) else ("" if value is None else str(value))
            )
            rows.append((var, shown, self.sources.get(var, "default")))
        return rows

    def __repr__(self) -> str:
        parts = ", ".join(
            f"{f.name}={getattr(self, f.name)!r}" for f in fields(self) if f.name != "sources"
        )
        return f"Settings({parts})"

    def apply_to_environ(self, environ: os._Environ[str] | dict[str, str] | None = None) -> None:
        """Export the LiveKit/AssemblyAI variables for libraries that read os.environ themselves
        (LiveKit's worker CLI and the AssemblyAI plugin)."""
        env = os.environ if environ is None else environ
        for var, attr in ENV_VARS.items():
            value = getattr(self, attr)
            if isinstance(value, Secret):
                value = value.reveal()
            if value in ("", None, ()):
                continue
            if var not in env:
                env[var] = ",".join(value) if isinstance(value, tuple) else str(value)


def _malformed(variable: str, value: str, *, min_len: int) -> list[Problem]:
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
    if len(value) < min_len:
        return [
            Problem(
                variable,
                f"is only {len(value)} characters long, too short to be real.",
                "copy the whole value.",
            )
        ]
    return []


def find_env_file(start: Path | None = None) -> Path | None:
    """The nearest `.env` from `start` (default: the working folder) up to the repo root."""
    here = (start or Path.cwd()).resolve()
    found: list[Path] = []
    for folder in (here, *here.parents):
        candidate = folder / ".env"
        if candidate.is_file():
            found.append(candidate)
        if (folder / ".git").exists() or (folder / "pyproject.toml").is_file():
            return found[0] if found else None
    # Not inside a repository: only the working folder's own .env counts, never a stray
    # one in a parent such as the home folder.
    local = here / ".env"
    return local if local.is_file() else None


def _colab_secrets(names: list[str]) -> dict[str, str]:
    if "google.colab" not in sys.modules:
        return {}
    try:
        from google.colab import userdata  # type: ignore[import-not-found]
    except ImportError:
        return {}
    found = {}
    for name in names:
        try:
            value = userdata.get(name)
        except Exception:  # Colab raises a zoo of errors for "not granted/not set"
            continue
        if value:
            found[name] = value
    return found


def load_settings(
    env_file: str | os.PathLike[str] | None = None, *, environ: Mapping[str, str] | None = None
) -> Settings:
    """Resolve the settings; never raises for bad values (see `Settings.problems()`).

    `env_file` names a file to read instead of searching for `.env`; a missing file named
    explicitly is an error, because the learner asked for it.
    """
    env = os.environ if environ is None else environ
    if env_file is not None:
        path: Path | None = Path(env_file).expanduser()
        assert path is not None
        if not path.is_file():
            raise FileNotFoundError(f"{path}: no such settings file")
    else:
        path = find_env_file()

    raw: dict[str, str] = {}
    sources: dict[str, str] = {}
    if path is not None:
        for var, value in dotenv_values(path).items():
            if var in ENV_VARS and value:
                raw[var], sources[var] = value, str(path.name)
    for var, value in _colab_secrets([v for v in ENV_VARS if v not in env]).items():
        raw[var], sources[var] = value, "Colab secrets"
    for var in ENV_VARS:
        if env.get(var):
            raw[var], sources[var] = env[var], "environment"

    values: dict[str, object] = {}
    for var, attr in ENV_VARS.items():
        if var not in raw:
            continue
        text = raw[var].strip() if attr not in _SECRET_FIELDS else raw[var]
        values[attr] = _convert(attr, text)
    return Settings(**values, env_file=path, sources=sources)  # type: ignore[arg-type]


def _parse_url(url: str) -> ParseResult | None:
    """The URL's parts, or None when Python's own parser (or its host/port reading) refuses it."""
    try:
        parsed = urlparse(url)
        _ = parsed.hostname, parsed.port  # both raise ValueError on a malformed netloc
    except ValueError:
        return None
    return parsed


def _convert(attr: str, text: str) -> object:
    if attr in _SECRET_FIELDS:
        return Secret(text)
    if attr in ("assemblyai_format_turns", "assemblyai_speaker_labels"):
        return text.strip().lower() not in ("0", "false", "no", "off")
    if attr == "assemblyai_end_of_turn_confidence":
        try:
            return float(text)
        except ValueError:
            return float("nan")  # reported by problems(), not silently ignored
    if attr in ("assemblyai_min_turn_silence_ms", "assemblyai_max_turn_silence_ms", "max_streams"):
        try:
            return int(text)
        except ValueError:
            return None
    if attr in ("assemblyai_keyterms", "assemblyai_languages"):
        return tuple(t.strip() for t in text.split(",") if t.strip())
    return text
