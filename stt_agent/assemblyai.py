"""The AssemblyAI engine: `livekit-plugins-assemblyai` configured from the kit's settings."""

from __future__ import annotations

from typing import TYPE_CHECKING

from livekit.agents.types import NOT_GIVEN

if TYPE_CHECKING:
    from livekit.plugins.assemblyai import STT as AssemblyAISTT

    from .config import Settings

__all__ = ["make_assemblyai_stt"]


def make_assemblyai_stt(settings: Settings) -> AssemblyAISTT:
    """The tutorial's `assemblyai.STT()`, with the key, endpoint and turn settings made explicit."""
    from livekit.plugins import assemblyai

    if not settings.assemblyai_api_key:
        raise ValueError(
            "ASSEMBLYAI_API_KEY is not set: add it to .env (see notebooks/02_credentials) "
            "or use the local engine"
        )
    min_silence = settings.assemblyai_min_turn_silence_ms
    max_silence = settings.assemblyai_max_turn_silence_ms
    return assemblyai.STT(
        api_key=settings.assemblyai_api_key.reveal(),
        base_url=settings.assemblyai_base_url,
        model=settings.assemblyai_speech_model,  # type: ignore[arg-type]
        format_turns=settings.assemblyai_format_turns,
        min_turn_silence=NOT_GIVEN if min_silence is None else min_silence,
        max_turn_silence=NOT_GIVEN if max_silence is None else max_silence,
        keyterms_prompt=list(settings.assemblyai_keyterms) or NOT_GIVEN,
    )
