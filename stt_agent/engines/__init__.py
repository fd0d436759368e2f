"""Speech engines behind LiveKit's `stt.STT` interface: AssemblyAI, or faster-whisper locally.

* `choice`: `make_stt(settings)`, the engine the settings ask for;
* `local_stt`, `local_stream`, `heard_utterance`: the local engine, a streaming LiveKit STT plugin
  (`LocalSTT`) whose streams turn Silero VAD events into interims and finals;
* `weights`, `vad`: the Whisper model (bundled weights, checksum, loading once) and Silero VAD;
* `decoding`, `batching`: Whisper decoding, and the one thread per model that batches every
  stream's decodes;
* `assemblyai`: the AssemblyAI plugin configured from the settings;
* `assemblyai_simulator`: an offline stand-in for AssemblyAI's v3 streaming API (notebook 05).
"""

from .choice import make_stt
from .decoding import Decoded
from .local_stream import LocalSpeechStream
from .local_stt import LocalSTT
from .vad import load_vad
from .weights import BUNDLED_MODEL_NAME, BUNDLED_MODEL_SHA256, LoadedModel, load_whisper

__all__ = [
    "BUNDLED_MODEL_NAME",
    "BUNDLED_MODEL_SHA256",
    "Decoded",
    "LoadedModel",
    "LocalSTT",
    "LocalSpeechStream",
    "load_vad",
    "load_whisper",
    "make_stt",
]
