"""Silero VAD for the local engine, with LiveKit's bundled weights, loaded once per process."""

from __future__ import annotations

import threading

from livekit.agents import vad

# LiveKit plugins register themselves on import and insist on the main thread; import it
# here, not lazily inside the model-loading thread.
from livekit.plugins import silero

from ..errors import ModelError

__all__ = ["load_vad"]

_vad: vad.VAD | None = None
_vad_lock = threading.Lock()


def load_vad() -> vad.VAD:
    """Silero VAD with LiveKit's bundled weights, tuned for transcription, loaded once."""
    global _vad
    with _vad_lock:
        if _vad is None:
            # 0.45 s of silence ends an utterance whatever Whisper thinks (the longest a turn
            # waits): short enough for snappy finals, long enough not to split a sentence at a
            # comma. 50 ms of speech opens one (Silero already smooths its probabilities),
            # and 0.4 s of audio before that is kept so the first sound is not lost.
            try:
                _vad = silero.VAD.load(
                    min_silence_duration=0.45,
                    prefix_padding_duration=0.4,
                    min_speech_duration=0.05,
                )
            except Exception as e:
                raise ModelError(
                    f"cannot load the Silero VAD: {e}. Reinstall livekit-plugins-silero "
                    "(its weights ship with the package)"
                ) from None
        return _vad
