"""What the simulator transcribes with: samples in, timed words out (Whisper by default)."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from ..weights import BUNDLED_MODEL_NAME, load_whisper

__all__ = ["TranscribeFn", "Word", "whisper_words"]

# (text as recognised, start s, end s[, confidence]), times relative to the array passed in.
# The text may carry punctuation and capitals: unformatted turns strip them, formatted keep them.
Word = tuple[str, float, float] | tuple[str, float, float, float]
# Float32 mono samples at 16 kHz in, words out. Called on a worker thread, one call at a time.
TranscribeFn = Callable[[np.ndarray], Sequence[Word]]


def whisper_words(model_name: str | None = None) -> TranscribeFn:
    """The local engine's Whisper model as a `TranscribeFn` (loaded on first use, shared).

    It calls faster-whisper's own `transcribe` (word timestamps) on the simulator's
    worker thread; CTranslate2 models take calls from several threads, so this runs beside
    the local engine's batching decoder without going through it."""
    name = model_name or BUNDLED_MODEL_NAME

    def transcribe(samples: np.ndarray) -> list[Word]:
        loaded = load_whisper(name)
        segments, _ = loaded.model.transcribe(
            samples,
            language="en" if loaded.english_only else None,
            beam_size=1,
            word_timestamps=True,
            condition_on_previous_text=False,
            vad_filter=False,  # the simulator's Silero VAD already cut the turn
        )  # a generator: the words below are decoded as they are read
        return [(w.word, w.start, w.end, w.probability) for s in segments for w in s.words or []]

    return transcribe
