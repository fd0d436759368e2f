"""Settings from `.env`, the environment and Colab secrets, with secrets masked everywhere.

Precedence, lowest first: defaults, the `.env` file, Colab secrets, environment variables.
The `.env` is the nearest one up to the repository root (`envfile.find_env_file`). Loading
never fails on a value: what is wrong is reported by `Settings.problems()` (`validation`).

Why a frozen dataclass and not pydantic-settings: loading must never raise for a bad value
(`check` reports it, with its fix), every value must say where it came from (`.env`, Colab
secrets, environment), Colab secrets are a source of their own, and `Secret` prints its length
("Secret(<40 chars>)"), which tells a learner more than `SecretStr`'s stars. Each of those is
a custom hook in pydantic-settings; together they would be more code than this, not less.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any, Literal

from dotenv import dotenv_values

from . import validation
from .envfile import find_env_file
from .errors import ConfigError
from .validation import Problem

__all__ = ["ENV_VARS", "MissingSettingsFile", "Secret", "Settings", "in_colab", "load_settings"]

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
_FALSE, _TRUE = ("0", "false", "no", "off"), ("1", "true", "yes", "on")


class MissingSettingsFile(ConfigError, FileNotFoundError):
    """A settings file named explicitly (`--env-file`, `load_settings(path)`) is not there."""


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
    # Variables whose text could not be read as their type (they keep their default).
    unreadable: frozenset[str] = frozenset()

    # --- what will run -------------------------------------------------------------------

    @property
    def has_livekit(self) -> bool:
        return bool(self.livekit_url and self.livekit_api_key and self.livekit_api_secret)

    @property
    def engine(self) -> Engine:
        """AssemblyAI when a key is configured (or forced), the local engine otherwise."""
        if self.engine_choice == "local":
            return "local"
        if self.engine_choice == "assemblyai" or self.assemblyai_api_key:
            return "assemblyai"
        return "local"

    @property
    def mode(self) -> Literal["room", "local"]:
        return "room" if self.has_livekit and not validation.livekit_problems(self) else "local"

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
        """Everything wrong with these settings, each with its fix (see `validation`)."""
        return validation.problems(self)

    # --- presentation --------------------------------------------------------------------

    def as_table(self) -> list[tuple[str, str, str]]:
        """(variable, shown value, where it came from) with every secret masked."""
        rows: list[tuple[str, str, str]] = []
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
            f"{f.name}={getattr(self, f.name)!r}"
            for f in fields(self)
            if f.name not in ("sources", "unreadable")
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


def in_colab() -> bool:
    """Whether this runs in Google Colab, whose secrets panel replaces the `.env` file."""
    return "google.colab" in sys.modules  # Colab's kernel imports it; nothing else does


def _colab_secrets(names: list[str]) -> dict[str, str]:
    if not in_colab():
        return {}
    try:
        from google.colab import userdata
    except ImportError:
        return {}
    found = {}
    for name in names:
        try:
            value = userdata.get(name)
        except Exception:  # Colab raises a zoo of errors for "not granted/not set"
            continue
        if isinstance(value, str) and value:
            found[name] = value
    return found


def _read_env_file(path: Path) -> dict[str, str]:
    try:
        values = dotenv_values(path)
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(
            f"{path}: cannot be read as a settings file ({type(e).__name__}); save it as "
            "UTF-8 text with one VARIABLE=value per line"
        ) from None
    return {var: value for var, value in values.items() if var in ENV_VARS and value}


def load_settings(
    env_file: str | os.PathLike[str] | None = None, *, environ: Mapping[str, str] | None = None
) -> Settings:
    """Resolve the settings; never raises for bad values (see `Settings.problems()`).

    `env_file` names a file to read instead of searching for `.env`; a missing file named
    explicitly is an error (`MissingSettingsFile`), because the learner asked for it.
    """
    env = os.environ if environ is None else environ
    path = find_env_file() if env_file is None else Path(env_file).expanduser()
    if path is not None and not path.is_file():
        raise MissingSettingsFile(f"{path}: no such settings file")

    raw: dict[str, tuple[str, str]] = {}  # variable -> (text, where it came from)
    if path is not None:
        raw.update((var, (value, path.name)) for var, value in _read_env_file(path).items())
    for var, value in _colab_secrets([v for v in ENV_VARS if v not in env]).items():
        raw[var] = (value, "Colab secrets")
    raw.update((var, (env[var], "environment")) for var in ENV_VARS if env.get(var))

    values: dict[str, Any] = {}  # each value has its field's type, by `_convert`
    sources: dict[str, str] = {}
    unreadable: set[str] = set()
    for var, (text, source) in raw.items():
        attr = ENV_VARS[var]
        if attr not in _SECRET_FIELDS:
            text = text.strip()
            if not text:
                continue  # only white space: as good as unset
        sources[var] = source
        try:
            values[attr] = _convert(attr, text)
        except ValueError:
            unreadable.add(var)  # reported by problems(); the default stays
    return replace(
        Settings(), **values, env_file=path, sources=sources, unreadable=frozenset(unreadable)
    )


def _convert(attr: str, text: str) -> object:
    """The setting's value from its text; ValueError when the text is not of its type."""
    if attr in _SECRET_FIELDS:
        return Secret(text)
    if attr in ("assemblyai_format_turns", "assemblyai_speaker_labels"):
        if text.lower() not in (*_FALSE, *_TRUE):
            raise ValueError(text)
        return text.lower() in _TRUE
    if attr == "assemblyai_end_of_turn_confidence":
        return float(text)
    if attr in ("assemblyai_min_turn_silence_ms", "assemblyai_max_turn_silence_ms", "max_streams"):
        return int(text)
    if attr in ("assemblyai_keyterms", "assemblyai_languages"):
        return tuple(t.strip() for t in text.split(",") if t.strip())
    return text
