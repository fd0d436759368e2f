"""Choosing the speech engine from the settings: AssemblyAI or the local one."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from livekit.agents import stt

from ..errors import ConfigError
from .local_stt import LocalSTT

if TYPE_CHECKING:
    from ..config import Settings

__all__ = ["make_stt"]


def make_stt(settings: Settings, *, engine: str | None = None) -> stt.STT[Any]:
    """AssemblyAI when a key is set (or `engine="assemblyai"`), the local engine otherwise.

    Raises `ConfigError` for an unknown engine name or AssemblyAI without a key; the local
    model itself loads on first use (`ModelError` then says what is wrong with it)."""
    chosen = engine or settings.engine
    if chosen == "assemblyai":
        # Imported here: the AssemblyAI plugin is only needed when it is chosen.
        from .assemblyai import make_assemblyai_stt

        return make_assemblyai_stt(settings)
    if chosen != "local":
        raise ConfigError(
            f"unknown engine {chosen!r}: use 'local' or 'assemblyai' "
            "(the --engine option, or STT_AGENT_ENGINE in .env)"
        )
    return LocalSTT(model=settings.local_model)
