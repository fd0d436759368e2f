"""The tutorial's transcriber, as an importable module.

The shape is the tutorial's: an `Agent` with `instructions="not-needed"` whose
`on_user_turn_completed` logs each finished utterance and raises `StopResponse` (so no LLM is
ever asked to reply), and an `entrypoint(ctx)` that joins the room audio-only and starts an
`AgentSession` with transcription output on and audio output off.

What the kit adds, through LiveKit's own hooks: the STT comes from `make_stt(settings)`
(AssemblyAI with a key, the local engine without), and a `TurnObserver` watches `stt_node`
(interim text, timing) and delivers each finished turn to the turn handlers and the
`TranscriptFeed` behind the notebook's widgets.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterable
from typing import Any

from livekit import rtc
from livekit.agents import (
    Agent,
    AgentServer,
    AgentSession,
    JobContext,
    ModelSettings,
    StopResponse,
    llm,
    stt,
)

from .config import Settings, load_settings
from .engines import make_stt
from .observer import TurnObserver

__all__ = ["Transcriber", "build_server", "entrypoint", "make_session"]

logger = logging.getLogger("transcriber")


class Transcriber(Agent):
    def __init__(
        self, *, stt: stt.STT[Any] | None = None, turns: TurnObserver | None = None
    ) -> None:
        super().__init__(
            instructions="not-needed",
            stt=stt if stt is not None else make_stt(load_settings()),
        )
        self.turns = turns if turns is not None else TurnObserver()

    async def stt_node(
        self, audio: AsyncIterable[rtc.AudioFrame], model_settings: ModelSettings
    ) -> AsyncIterable[stt.SpeechEvent | str]:
        # LiveKit's own STT node, with the kit's observer on both sides of it.
        events = Agent.default.stt_node(self, self.turns.count(audio), model_settings)
        return self.turns.observe(events, self)

    async def on_user_turn_completed(
        self, turn_ctx: llm.ChatContext, new_message: llm.ChatMessage
    ) -> None:
        user_transcript = new_message.text_content or ""
        logger.info(f" -> {user_transcript}")
        await self.turns.deliver(user_transcript, new_message)
        raise StopResponse()


def make_session(*, close_transcript_timeout: float = 2.0) -> AgentSession[None]:
    """An `AgentSession` shaped for a transcriber.

    The STT decides when a turn ends (both engines endpoint on their own), and a turn is
    delivered as soon as it does: the 0.5 s `min_delay` meant to let an LLM wait for more
    words would only make transcripts late. No VAD at the session level: the local engine
    runs its own, and a second one would double the CPU cost for nothing.
    """
    return AgentSession(
        vad=None,
        turn_handling={
            "turn_detection": "stt",
            "endpointing": {"min_delay": 0.0, "max_delay": 1.0},
            "interruption": {"enabled": False},
            "preemptive_generation": {"enabled": False},
        },
        user_away_timeout=None,
        # How long closing waits for a last transcript; local mode drains first, so it
        # passes a short one instead of paying two seconds per file.
        session_close_transcript_timeout=close_transcript_timeout,
    )


async def entrypoint(ctx: JobContext) -> None:
    """The tutorial's entrypoint: join audio-only, transcribe, publish transcriptions; here
    every participant who speaks gets a session of their own (LiveKit's multi-user pattern:
    `MultiUserTranscriber` starts each one just like the tutorial's `session.start`)."""
    from .room.multi_user import transcribe_room  # it builds on this module

    await transcribe_room(ctx, load_settings())


def build_server(settings: Settings | None = None) -> AgentServer:
    """The worker the tutorial's `python stt_agent.py dev` registers: our entrypoint on an
    `AgentServer`, explicitly dispatched when an agent name is set."""
    settings = settings or load_settings()
    server = AgentServer()
    server.rtc_session(entrypoint, agent_name=settings.agent_name)
    return server
