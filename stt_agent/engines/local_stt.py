"""The local engine: faster-whisper behind LiveKit's `stt.STT` interface, with Silero VAD.

`LocalSTT` holds the options and shares one model (`weights`) and one VAD (`vad`) between all
its streams; each `stream()` is a `LocalSpeechStream`, and `local_stream`'s docstring says what
keeps the engine quick on a laptop's CPU (batching, short windows, speculative finals, end of
turn when Whisper is sure, early interims).
"""

from __future__ import annotations

import asyncio
from typing import Literal, Never

import numpy as np
from livekit import rtc
from livekit.agents import LanguageCode, stt, utils, vad
from livekit.agents.types import (
    DEFAULT_API_CONNECT_OPTIONS,
    NOT_GIVEN,
    APIConnectOptions,
    NotGivenOr,
)

from ..audio import SAMPLE_RATE
from .decoding import decode_async as _decode_async
from .local_stream import LocalSpeechStream
from .vad import load_vad
from .weights import BUNDLED_MODEL_NAME, is_loaded, load_whisper
from .weights import LoadedModel as _LoadedModel

__all__ = ["LocalSTT"]


# The pause that confirms a caption final (see LocalSTT's docstring for how it was chosen).
CAPTION_FINAL_AFTER_S = 0.1


class LocalSTT(stt.STT[Never]):  # no events beyond the base STT's
    """faster-whisper + Silero VAD as a streaming LiveKit STT, with interim results.

    The model is loaded once per process and shared by every instance and every stream, which
    submit their decodes to one scheduler (so N sessions cost one model, not N). Each stream
    reports what it has processed to the `RunProgress` of the local run it belongs to (see
    `stt_agent.progress`), which is how a run knows its audio has been recognised.

    Turn ends (see `local_stream`'s docstring): a turn ends `min_turn_silence_s` after the speech
    when Whisper gives the words at least `end_of_turn_confidence` of ending a sentence, and
    after the VAD's silence (0.45 s with `load_vad()`) otherwise. Early ends apply only to
    audio arriving in real time; a file transcribed as fast as possible is cut by the VAD
    alone, the same way on every run.

    Caption finals (`caption_final_after_s`, on by default): the words before a pause are a
    FINAL_TRANSCRIPT once this much silence confirms it and their decode is done; the turn
    still ends by the rule above and holds every caption final's words (LiveKit's session
    joins them). `None` gives one final per turn, as before. The decode is asked at the first
    quiet VAD window (`speculate_after_s` 0), so it is usually done by the time the pause is
    confirmed. Chosen on the ten scored clips in real time, end of speech -> caption final
    p50 / p95 (pinned-down ends), 2-core machine with other work running (load 2-3). Clean
    clips, one run each: 0.2 s after 0.06 s 303-322 / 406-456 ms (two runs); 0.1 s after
    0.06 s 291 / 514 ms, waiting for the decode. Clean and noisy clips, two runs each:
    0.15 s after 0 241-262 / 362-588 ms; **0.1 s after 0 228-243 / 382-461 ms**. Turns and
    cuts were the same for every value (16 and 4 on the clean clips, 31 and 8 with the noisy
    ones), and the turns' real-time WER moved within its run-to-run spread (0.050-0.072).
    Silero's end of speech comes about 80 ms after the audio's, so with a 0.2 s pause no
    caption could come sooner than about 300 ms. The cost: a caption final is decoded
    without the words after it (Whisper's right context), and words that only repeat the
    caption finals are dropped from what follows (`decoding._repeats_prefix`).

    `interim_policy`: "eager" shows the first decode at once and then only words two decodes
    agree on; "agreed" waits for agreement from the start (about 250 ms later, a little less
    flicker); "every" shows every decode as it comes (the most flicker).
    """

    def __init__(
        self,
        *,
        model: str = BUNDLED_MODEL_NAME,
        language: str | None = "en",
        beam_size: int = 3,
        interim_interval_s: float = 0.06,
        first_interim_after_s: float = 0.05,
        speculate_after_s: float = 0.0,
        min_turn_silence_s: float = 0.15,
        caption_final_after_s: float | None = CAPTION_FINAL_AFTER_S,
        end_of_turn_confidence: float = 0.95,
        interim_policy: Literal["agreed", "eager", "every"] = "eager",
        vad: vad.VAD | None = None,
    ) -> None:
        super().__init__(capabilities=stt.STTCapabilities(streaming=True, interim_results=True))
        self._model_name = model
        self._language = language
        self._beam_size = beam_size
        self._interim_interval_s = interim_interval_s
        self._first_interim_after_s = first_interim_after_s
        self._speculate_after_s = speculate_after_s
        self._min_turn_silence_s = min_turn_silence_s
        self._caption_final_after_s = caption_final_after_s
        self._end_of_turn_confidence = end_of_turn_confidence
        self._interim_policy = interim_policy
        self._vad = vad

    @property
    def model(self) -> str:
        return self._model_name

    @property
    def provider(self) -> str:
        return "faster-whisper (local)"

    @property
    def is_loaded(self) -> bool:
        return is_loaded(self._model_name) and self._vad is not None

    def prewarm(self) -> None:
        load_whisper(self._model_name)
        if self._vad is None:
            self._vad = load_vad()

    def _loaded(self) -> tuple[_LoadedModel, vad.VAD]:
        self.prewarm()
        assert self._vad is not None
        return load_whisper(self._model_name), self._vad

    async def _recognize_impl(
        self,
        buffer: utils.AudioBuffer,
        *,
        language: NotGivenOr[str] = NOT_GIVEN,
        conn_options: APIConnectOptions,
    ) -> stt.SpeechEvent:
        loaded, _ = await asyncio.to_thread(self._loaded)
        frame = utils.combine_frames(buffer)
        if frame.sample_rate != SAMPLE_RATE or frame.num_channels != 1:
            resampler = rtc.AudioResampler(frame.sample_rate, SAMPLE_RATE, num_channels=1)
            frame = utils.combine_frames([*resampler.push(frame), *resampler.flush()])
        audio = np.frombuffer(frame.data, dtype=np.int16).astype(np.float32) / 32768.0
        decoded = await _decode_async(
            loaded,
            audio,
            beam_size=self._beam_size,
            language=language if isinstance(language, str) else self._language,
        )
        return stt.SpeechEvent(
            type=stt.SpeechEventType.FINAL_TRANSCRIPT,
            alternatives=[
                stt.SpeechData(
                    language=LanguageCode(decoded.language),
                    text=decoded.text,
                    end_time=audio.size / SAMPLE_RATE,
                )
            ],
        )

    def stream(
        self,
        *,
        language: NotGivenOr[str] = NOT_GIVEN,
        conn_options: APIConnectOptions = DEFAULT_API_CONNECT_OPTIONS,
    ) -> LocalSpeechStream:
        return LocalSpeechStream(
            self,
            conn_options=conn_options,
            language=language if isinstance(language, str) else self._language,
        )
