"""The utterance a local stream is hearing: its audio so far and what decoding and timing need."""

from __future__ import annotations

import asyncio
import uuid

import numpy as np

from ..audio import SAMPLE_RATE
from .decoding import Decoded

__all__ = ["HeardUtterance"]

# What an utterance's last decode keeps after the speech: a little real trailing audio keeps
# Whisper from dropping the last word.
_TRAILING_S = 0.2


class HeardUtterance:
    """Audio of the utterance being heard, with the facts needed to decode and time it."""

    def __init__(self, first_sample: int, audio: np.ndarray) -> None:
        self.id = uuid.uuid4().hex[:8]
        self.first_sample = first_sample  # absolute index in the stream, for timestamps
        self.chunks = [audio]
        self.n = audio.size
        self.opened_n = audio.size  # audio held when the VAD said speech began
        self.speech_n = audio.size  # samples up to the end of the last speechy VAD window
        self.silence_s = 0.0
        self.speculation: tuple[int, asyncio.Future[Decoded]] | None = None
        self.finished = False  # set once the final is out: late interims are dropped
        # Caption finals: speech up to `finalised_n` has been given as a final already, with
        # the words `final_text`; the next words are timed from `segment_start` (the pause
        # after them) and decoded with all the audio and those words as a forced prefix.
        self.finalised_n = 0
        self.segment_start = 0
        self.final_text = ""
        self.captions = 0  # caption finals so far: an interim asked before one is stale
        # The last pause the speaker ended: where its speech stopped and how long it lasted.
        self.pause_at = 0
        self.pause_s = 0.0
        # A decode of the speech up to `pause_at`, kept when the speaker went on before it
        # was done: it becomes that speech's caption final when it is.
        self.pending_caption: tuple[int, asyncio.Future[Decoded]] | None = None
        # interims
        self.interim_at_n = 0
        self.interim_busy = False
        self.last_words: list[str] | None = None  # the previous interim decode's words
        self.shown: list[str] = []  # words shown so far (two decodes agreed on them)

    def append(self, audio: np.ndarray, *, speechy: bool, window_s: float) -> None:
        self.chunks.append(audio)
        self.n += audio.size
        if speechy:
            if self.silence_s > 0:
                self.pause_at, self.pause_s = self.speech_n, self.silence_s
            self.speech_n = self.n
            self.silence_s = 0.0
        else:
            self.silence_s += window_s

    def audio(self, upto: int | None = None) -> np.ndarray:
        if len(self.chunks) > 1:
            self.chunks = [np.concatenate(self.chunks)]
        pcm = self.chunks[0][: self.n if upto is None else upto]
        return pcm.astype(np.float32) / 32768.0

    @property
    def unfinalised(self) -> bool:
        """Speech was heard since the last caption final (or there was none yet)."""
        return self.speech_n > self.finalised_n

    def captioned(self, text: str, upto: int) -> None:
        """The speech up to `upto` is final (as `text`): the next words start after it."""
        self.finalised_n = self.segment_start = upto
        if any(c.isalnum() for c in text):
            self.final_text = f"{self.final_text} {text}".strip()
        self.captions += 1
        self.last_words = None
        self.shown = []

    def final_end(self) -> int:
        """Where the final decode stops: the last speech plus what trailing audio there is."""
        return min(self.n, self.speech_n + int(_TRAILING_S * SAMPLE_RATE))

    def speculated(self) -> Decoded | None:
        """The speculative decode's result, if it covers all the speech heard and is done."""
        if self.speculation is None:
            return None
        end, future = self.speculation
        if end < self.speech_n or not future.done() or future.cancelled():
            return None
        return future.result() if future.exception() is None else None
