"""stt-agent: the LiveKit + AssemblyAI transcriber tutorial as a JupyterLab kit.

import stt_agent
utterances = await stt_agent.transcribe_file("talk.wav")   # local mode, no keys
utterances = await stt_agent.transcribe_file(stt_agent.samples.path("jfk"))  # a shipped sample
async with stt_agent.DevServer() as settings: ...   # the kit's LiveKit server, no account
"""

from typing import TYPE_CHECKING, Any

from . import (
    _launch,  # noqa: F401  first: a Ctrl-C during the imports below is one line
    samples,
)
from .agent import Transcriber, build_server, entrypoint, make_session
from .audio import ArraySource, AudioSource, FileSource
from .config import Secret, Settings, load_settings
from .engines import LocalSTT, make_stt
from .errors import (
    AudioSourceError,
    ConfigError,
    EngineError,
    ModelError,
    RoomError,
    SttAgentError,
)
from .feed import CaptionFinal, MetricsEvent, TranscriptFeed, Utterance
from .handle import AgentHandle, AgentStatus
from .handler_examples import append_jsonl, keyword_alert, redact, words_per_minute
from .handlers import TurnHandlers
from .local import transcribe, transcribe_file
from .local_agent import start_local
from .probes import usable_engine
from .room.rooms import RoomSession, mint_user_token, open_room, playground_url, show_room
from .room.speaker import VirtualSpeaker
from .room.worker import start_agent
from .room.workshop import Workshop, open_workshop
from .sync import run_sync
from .ui.credentials_form import CredentialsForm
from .ui.mic import MicrophoneError, MicWidget
from .ui.status_view import StatusView
from .ui.transcript_view import TranscriptView

if TYPE_CHECKING:
    from .devserver import DevServer


def __getattr__(name: str) -> Any:
    # The kit's LiveKit server loads aiortc: only when a notebook or script asks for it.
    if name == "DevServer":
        from .devserver.server import DevServer

        return DevServer
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "AgentHandle",
    "AgentStatus",
    "ArraySource",
    "AudioSource",
    "AudioSourceError",
    "CaptionFinal",
    "ConfigError",
    "CredentialsForm",
    "DevServer",
    "EngineError",
    "FileSource",
    "LocalSTT",
    "MetricsEvent",
    "MicWidget",
    "MicrophoneError",
    "ModelError",
    "RoomError",
    "RoomSession",
    "Secret",
    "Settings",
    "StatusView",
    "SttAgentError",
    "Transcriber",
    "TranscriptFeed",
    "TranscriptView",
    "TurnHandlers",
    "Utterance",
    "VirtualSpeaker",
    "Workshop",
    "append_jsonl",
    "build_server",
    "entrypoint",
    "keyword_alert",
    "load_settings",
    "make_session",
    "make_stt",
    "mint_user_token",
    "open_room",
    "open_workshop",
    "playground_url",
    "redact",
    "run_sync",
    "samples",
    "show_room",
    "start_agent",
    "start_local",
    "transcribe",
    "transcribe_file",
    "usable_engine",
    "words_per_minute",
]
