"""stt-agent: the LiveKit + AssemblyAI transcriber tutorial as a JupyterLab kit.

import stt_agent
utterances = await stt_agent.transcribe_file("talk.wav")   # local mode, no keys
"""

from .agent import Transcriber, build_server, entrypoint, make_session
from .audio import ArraySource, AudioSource, AudioSourceError, FileSource
from .config import Secret, Settings, load_settings
from .engines import LocalSTT, make_stt
from .feed import MetricsEvent, TranscriptFeed, Utterance
from .handlers import TurnHandlers, append_jsonl, keyword_alert, redact, words_per_minute
from .local import transcribe, transcribe_file
from .runtime import AgentHandle, AgentStatus, start_agent, start_local
from .widgets import StatusView, TranscriptView

__all__ = [
    "AgentHandle",
    "AgentStatus",
    "StatusView",
    "TranscriptView",
    "append_jsonl",
    "keyword_alert",
    "redact",
    "start_agent",
    "start_local",
    "words_per_minute",
    "ArraySource",
    "AudioSource",
    "AudioSourceError",
    "FileSource",
    "LocalSTT",
    "MetricsEvent",
    "Secret",
    "Settings",
    "Transcriber",
    "TranscriptFeed",
    "TurnHandlers",
    "Utterance",
    "build_server",
    "entrypoint",
    "load_settings",
    "make_session",
    "make_stt",
    "transcribe",
    "transcribe_file",
]
