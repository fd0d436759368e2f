"""A local simulator of AssemblyAI's v3 streaming API that transcribes with the local engine.

For learning and workshops without an AssemblyAI key or network: the real
`livekit-plugins-assemblyai` client connects to it exactly as it would to
``wss://streaming.assemblyai.com``, and the turn settings travel the same way::

    from stt_agent.engines.assemblyai_simulator import AssemblyAISimulator

    async with AssemblyAISimulator() as sim:           # 127.0.0.1, a free port, a random key
        settings = sim.settings(assemblyai_max_turn_silence_ms=800)
        stt = stt_agent.make_stt(settings)             # the real AssemblyAI plugin
        utterances = await stt_agent.transcribe(samples.path("jfk"), stt=stt, realtime=True)
        await stt.aclose()

It is never used unless asked for. What it simulates, from AssemblyAI's documentation
("Message Sequence", "Common session errors and closures"):

* ``GET /v3/ws?sample_rate=…&encoding=pcm_s16le&speech_model=…`` upgraded to a websocket, with
  the API key (no "Bearer") in the ``Authorization`` header; a wrong key gets HTTP 401;
* client → server: binary audio, and JSON ``UpdateConfiguration``, ``ForceEndpoint``,
  ``KeepAlive``, ``Terminate``;
* server → client: ``Begin``; ``SpeechStarted`` (Universal-3 Pro models only); ``Turn``
  messages: partials, the end-of-turn one (lower case, no punctuation) and, with
  ``format_turns=true``, a formatted copy (punctuated, capitalised); ``Termination`` after
  ``Terminate``, then close 1000; ``Error`` + close 3006 for bad input;
* ``GET /v3/token``: a temporary streaming token for a valid key (what `check` uses).

What it does not: AssemblyAI's end-of-turn *model*. Silero VAD finds the speech; a turn ends
after ``max_turn_silence`` of silence (a partial is sent after ``min_turn_silence``), so a
pause shorter than that never ends a turn. The words come from the local engine (Whisper
tiny.en by default), whose own punctuation and casing make the formatted turns.

The parts: `server` (the HTTP side: keys, tokens, the websocket upgrade), `session` (one
connection: audio in, VAD-driven turns, transcripts out), `wire` (the messages' shapes) and
`recogniser` (samples to words; the local engine's Whisper by default).
"""

from .recogniser import TranscribeFn, Word, whisper_words
from .server import AssemblyAISimulator
from .session import SessionRecord, SimulatedSession
from .wire import send_error

__all__ = [
    "AssemblyAISimulator",
    "SessionRecord",
    "SimulatedSession",
    "TranscribeFn",
    "Word",
    "send_error",
    "whisper_words",
]
