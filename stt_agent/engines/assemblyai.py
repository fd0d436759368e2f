"""The AssemblyAI engine: `livekit-plugins-assemblyai` configured from the kit's settings."""

from __future__ import annotations

import asyncio
import typing
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import aiohttp
from livekit.agents import utils
from livekit.agents.types import NOT_GIVEN
from livekit.plugins import assemblyai
from livekit.plugins.assemblyai import stt as _plugin

from ..errors import ConfigError

if TYPE_CHECKING:
    from ..config import Settings

__all__ = ["MODES", "SPEECH_MODELS", "U3_PRO_MODELS", "AssemblyAISTT", "make_assemblyai_stt"]


def _literal(annotation: Any) -> tuple[str, ...]:
    """The strings of a `Literal[...]`, also inside `NotGivenOr[Literal[...]]`."""
    if typing.get_origin(annotation) is typing.Literal:
        return typing.get_args(annotation)
    return tuple(v for arg in typing.get_args(annotation) for v in _literal(arg))


# What the installed plugin offers, read from it so the settings check stays current:
# Universal-Streaming English and multilingual, and the Universal-3 Pro family.
_OPTIONS = typing.get_type_hints(_plugin.STTOptions)
SPEECH_MODELS: tuple[str, ...] = _literal(_OPTIONS["speech_model"])
MODES: tuple[str, ...] = _literal(_OPTIONS["mode"])  # latency / accuracy presets, U3 Pro only
U3_PRO_MODELS: tuple[str, ...] = tuple(getattr(_plugin, "_U3_PRO_MODELS", ())) or tuple(
    m for m in SPEECH_MODELS if "3" in m
)


class AssemblyAISTT(assemblyai.STT):
    """The plugin, also usable outside a LiveKit job (local mode in a notebook or the CLI).

    In a job, LiveKit provides a shared HTTP session. Outside one the plugin would fail, so
    this opens its own session on the running loop (a new one if the loop changed, as it does
    between notebook runs of `asyncio.run`) and closes it in `aclose()`.
    """

    _own_session: aiohttp.ClientSession | None = None
    _own_loop: asyncio.AbstractEventLoop | None = None

    def __init__(self, *, base_url: str, **options: Any) -> None:
        super().__init__(base_url=base_url, **options)
        self.host = urlsplit(base_url).netloc or base_url  # named in failure messages

    @property
    def session(self) -> aiohttp.ClientSession:
        try:
            return utils.http_context.http_session()
        except RuntimeError:
            pass
        loop = asyncio.get_running_loop()
        if self._own_session is None or self._own_session.closed or self._own_loop is not loop:
            self._own_session, self._own_loop = aiohttp.ClientSession(), loop
        return self._own_session

    async def aclose(self) -> None:
        await super().aclose()
        if self._own_session is not None and not self._own_session.closed:
            await self._own_session.close()


def make_assemblyai_stt(settings: Settings) -> AssemblyAISTT:
    """The tutorial's `assemblyai.STT()`, with the key, endpoint and turn settings made explicit.

    Turn detection stays with AssemblyAI: the session runs with `turn_detection="stt"`, so a
    turn ends where the service's own end-of-turn model (and the silence thresholds here) say.
    Raises `ConfigError` (naming what to fix) without a key or for settings the plugin refuses.
    """
    if not settings.assemblyai_api_key:
        raise ConfigError(
            "ASSEMBLYAI_API_KEY is not set: add it to .env (see notebooks/02_credentials) "
            "or use the local engine"
        )
    try:
        return _plugin_stt(settings)
    except ValueError as e:  # the plugin's own checks (e.g. a mode for a non-U3 Pro model)
        reason = str(e).rstrip(".")
        raise ConfigError(
            f"the AssemblyAI settings are refused by livekit-plugins-assemblyai: {reason}. Fix "
            "the ASSEMBLYAI_* settings in .env (`python -m stt_agent check` shows them)"
        ) from None


def _plugin_stt(settings: Settings) -> AssemblyAISTT:
    assert settings.assemblyai_api_key is not None  # checked by make_assemblyai_stt
    min_silence = settings.assemblyai_min_turn_silence_ms
    max_silence = settings.assemblyai_max_turn_silence_ms
    confidence = settings.assemblyai_end_of_turn_confidence
    return AssemblyAISTT(
        api_key=settings.assemblyai_api_key.reveal(),
        base_url=settings.assemblyai_base_url,
        model=settings.assemblyai_speech_model,
        format_turns=settings.assemblyai_format_turns,
        min_turn_silence=NOT_GIVEN if min_silence is None else min_silence,
        max_turn_silence=NOT_GIVEN if max_silence is None else max_silence,
        end_of_turn_confidence_threshold=NOT_GIVEN if confidence is None else confidence,
        keyterms_prompt=list(settings.assemblyai_keyterms) or NOT_GIVEN,
        # Universal-3 Pro only (the plugin refuses them with other models; `check` says so)
        mode=settings.assemblyai_mode or NOT_GIVEN,
        language_codes=list(settings.assemblyai_languages) or NOT_GIVEN,
        # Speaker labels ("A", "B", ...) arrive on each transcript's `speaker_id`.
        speaker_labels=settings.assemblyai_speaker_labels or NOT_GIVEN,
    )
