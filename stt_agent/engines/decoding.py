"""Whisper decoding for the local engine: batches of utterances, on the model's thread.

The scheduler's thread runs `decode` on each batch (through `LoadedModel.decoder`, the seam
tests and benchmarks wrap); streams queue one utterance at a time with `decode_async`. What
the encoder sees of an utterance is a `Window`: a short one for interims, a longer one for
finals, Whisper's full 30 s when a final comes out looping.
"""

from __future__ import annotations

import asyncio
import difflib
import re
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

import numpy as np

from ..audio import SAMPLE_RATE
from ..errors import EngineError
from .batching import Job

if TYPE_CHECKING:
    from .weights import LoadedModel

__all__ = [
    "CROWDED_BATCH",
    "FINAL_WINDOW",
    "FULL_WINDOW",
    "INTERIM_WINDOW",
    "SENTENCE_ENDS",
    "TRAILING_PUNCTUATION",
    "Decoded",
    "Request",
    "Window",
    "decode",
    "decode_async",
]

_HOP = 160  # samples per mel frame: 100 frames a second
_MAX_FRAMES = 3000  # Whisper's 30 s window


@dataclass(frozen=True)
class Window:
    """How many mel frames the encoder sees for `n` samples of audio.

    Whisper needs some padding after the words to know the speech has ended; below a floor
    tiny.en starts repeating itself on short utterances ("And so my… And so my… And so my").
    Finals keep a 12 s floor: over the shared clips and their noisy versions (360 words),
    beam 3 made 20 errors at 12 s, 22 at 10 s and 25 at 8 s (where the noisy JFK clip
    looped); the rare final that still loops is decoded again with the full window
    (`decode`). Beam 3 is as accurate as beam 5 there (20 errors) and cheaper; greedy made
    29, beam 2 made 24, so beam search pays for finals. Greedy interims of half a
    second to a few seconds of speech are as good with an 8 s window; at 4 s, 15 of 124
    early decodes of the shared clips looped ("n n n n"), at 8 s none did."""

    tail: int  # frames of padding after the audio
    floor: int  # at least this many frames
    # The floor in a crowded batch (see `CROWDED_BATCH`); the same as `floor` unless set.
    crowded_floor: int | None = None

    def frames(self, n: int, *, crowded: bool = False) -> int:
        floor = self.crowded_floor if crowded and self.crowded_floor else self.floor
        return min(_MAX_FRAMES, max(floor, n // _HOP + 1 + self.tail))


# An adaptive window under load: when this many utterances are decoded in one batch (many
# streams' turns ending at once), finals get an 8 s floor instead of 12 s. The encoder is most
# of such a batch's cost, and more than linear in its size: on 2 cores, 8 finals of 2.7 s took
# 680-850 ms with the 12 s floor (the encoder alone 516 ms, against 44 ms for one) and
# 330-420 ms with 8 s. With 8 real-time streams of the JFK clip (`benchmarks.streams`, three
# runs each, load 2.2-2.7), the latest final fell 91-556 ms (median 243) behind a lone
# stream's median with it, and 436-549 ms (median 511) without. The cost is accuracy in that
# moment only (over the shared clips and their noisy versions, 25 word errors at 8 s against
# 20 at 12 s; a final that loops is decoded again with the full window): a lone stream, or a
# few, never sees it.
CROWDED_BATCH = 4
FINAL_WINDOW = Window(tail=300, floor=1200, crowded_floor=800)
FULL_WINDOW = Window(tail=300, floor=_MAX_FRAMES)
INTERIM_WINDOW = Window(tail=200, floor=800)


SENTENCE_ENDS = (".", "!", "?", "...", '."', '?"', '!"')
TRAILING_PUNCTUATION = re.compile(r"[\s.,!?;:…\"']+$")


@dataclass(frozen=True)
class Request:
    """One utterance to decode, as the scheduler hands it to `decode`."""

    audio: np.ndarray  # float32, 16 kHz mono
    beam_size: int
    window: Window
    language: str | None
    end_confidence: bool  # also say how likely the words end a sentence
    # Words of this audio that are final already (caption finals): forced as the start of the
    # transcript, so Whisper still hears all the audio and only the words after them come back.
    prefix: str = ""

    @property
    def frames(self) -> int:
        """Encoder frames when decoded alone (the scheduler's size for this job)."""
        return self.frames_in(1)

    def frames_in(self, batch_size: int) -> int:
        """Encoder frames for this request in a batch of `batch_size` (`CROWDED_BATCH`)."""
        return self.window.frames(self.audio.size, crowded=batch_size >= CROWDED_BATCH)


@dataclass(frozen=True)
class Decoded:
    text: str
    language: str
    # Whisper's probability that a sentence ends after these words (NaN when not asked for).
    end_confidence: float = float("nan")


def _plain_words(text: str) -> list[str]:
    return [w for w in (re.sub(r"[^\w']", "", t.lower()) for t in text.split()) if w]


def _loops(text: str) -> bool:
    """Whisper stuck in a loop: a phrase said twice in a row, or a word four times."""
    words = _plain_words(text)
    for n in range(1, len(words) // 2 + 1):
        times = 4 if n == 1 else 2
        for i in range(len(words) - times * n + 1):
            if all(words[i + k * n : i + (k + 1) * n] == words[i : i + n] for k in range(times)):
                return True
    return False


# How alike (difflib's ratio over words) the words after a forced prefix and a stretch of the
# prefix must be to count as Whisper saying the prefix again (see `_repeats_prefix`).
_REPEAT_RATIO = 0.75


def _repeats_prefix(prefix: str, text: str) -> bool:
    """Whisper saying again words it was forced to start with.

    With caption finals the rest of a turn is decoded with the caption's words as a forced
    prefix. When what follows them is no speech (applause, a breath, Opus's comfort noise),
    tiny.en tends to say the prefix again: in room mode "ask what you can do for your
    country." came back as "You can do it for your country." over the applause after it.
    Those words are already final, so the new text is dropped when it is (nearly, by
    difflib's ratio >= 0.75) a stretch of the prefix as long as itself. Real speech that
    repeats two or more of the turn's words verbatim after a pause is the price; one word
    alone is never dropped."""
    new, old = _plain_words(text), _plain_words(prefix)
    if len(new) < 2 or len(new) > len(old):
        return False
    return any(
        difflib.SequenceMatcher(None, new, old[i : i + len(new)]).ratio() >= _REPEAT_RATIO
        for i in range(len(old) - len(new) + 1)
    )


def decode(loaded: LoadedModel, requests: Sequence[Request]) -> list[Decoded]:
    """Decode a batch; a final that comes out looping ("And so my fellow American. And so my
    fellow American.", seen on the noisy JFK clip with an 8 s window) is decoded again with
    Whisper's full 30 s window, which it was trained on. A looping interim is not shown, and
    words that only repeat a request's forced prefix are dropped (`_repeats_prefix`)."""
    results = _decode_batch(loaded, requests)
    again = [i for i, d in enumerate(results) if _loops(d.text)]
    finals = [i for i in again if requests[i].window is FINAL_WINDOW]
    for i in set(again) - set(finals):
        results[i] = replace(results[i], text="")
    if finals:
        retried = _decode_batch(loaded, [replace(requests[i], window=FULL_WINDOW) for i in finals])
        for i, decoded in zip(finals, retried, strict=True):
            results[i] = decoded
    for i, (request, decoded) in enumerate(zip(requests, results, strict=True)):
        if request.prefix and _repeats_prefix(request.prefix, decoded.text):
            results[i] = replace(decoded, text="")
    return results


def _decode_batch(loaded: LoadedModel, requests: Sequence[Request]) -> list[Decoded]:
    """One CTranslate2 batch: encode, generate, and (for turn ends) one step more to read the
    probability of a sentence-final mark. Requests in one batch share a beam size."""
    model = loaded.model
    n = len(requests)
    window = max(r.frames_in(n) for r in requests)
    mels = [model.feature_extractor(r.audio)[:, :window] for r in requests]
    features = np.zeros((n, mels[0].shape[0], window), dtype=np.float32)
    for i, mel in enumerate(mels):
        features[i, :, : mel.shape[-1]] = mel
    encoded = model.encode(features)
    asked = [r.language if not loaded.english_only else "en" for r in requests]
    detected = model.model.detect_language(encoded) if None in asked else []
    # What Whisper detected where no language was asked for ("<|en|>" -> "en").
    languages = [lang or detected[i][0][0].strip("<|>") for i, lang in enumerate(asked)]
    tokenizers = [loaded.tokenizer(lang) for lang in languages]
    prompts = [[*t.sot_sequence, t.no_timestamps] for t in tokenizers]
    prefixes = [
        t.encode(" " + r.prefix.strip()) if r.prefix.strip() else []
        for r, t in zip(requests, tokenizers, strict=True)
    ]
    # Speech runs at 2-4 tokens a second; a hard cap stops a rare loop early.
    max_new = max(int(r.audio.size / SAMPLE_RATE * 8) + 10 for r in requests)
    results = model.model.generate(
        encoded,
        [[*p, *f] for p, f in zip(prompts, prefixes, strict=True)],
        beam_size=requests[0].beam_size,
        # CTranslate2 counts a forced prefix twice against max_length.
        max_length=min(
            448, max(len(p) + 2 * len(f) for p, f in zip(prompts, prefixes, strict=True)) + max_new
        ),
        return_scores=True,
        return_no_speech_prob=True,
        suppress_blank=True,
        suppress_tokens=loaded.suppress,
    )
    texts: list[str] = []
    word_tokens: list[list[int]] = []
    for r, tokenizer, prefix in zip(results, tokenizers, prefixes, strict=True):
        tokens = r.sequences_ids[0]  # the forced prefix included
        new = tokens[len(prefix) :] if tokens[: len(prefix)] == prefix else tokens
        avg_logprob = r.scores[0] * len(tokens) / (len(tokens) + 1)
        # faster-whisper's silence rule: likely no speech and no confident words.
        if r.no_speech_prob > 0.6 and avg_logprob < -1.0:
            tokens = new = []
        texts.append(tokenizer.decode(new).strip())
        while tokens and not TRAILING_PUNCTUATION.sub("", tokenizer.decode(tokens[-1:])):
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
    loaded: LoadedModel, encoded: Any, prompts: list[list[int]], words: list[list[int]]
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


async def decode_async(
    loaded: LoadedModel,
    audio: np.ndarray,
    *,
    beam_size: int,
    language: str | None,
    stream: int = -1,
    urgent: bool = True,
    window: Window = FINAL_WINDOW,
    end_confidence: bool = False,
    prefix: str = "",
) -> Decoded:
    """Queue one utterance on the model's scheduler and wait for its turn in a batch."""
    request = Request(audio, beam_size, window, language, end_confidence, prefix)
    job: Job[Request, Decoded] = Job(
        request, stream=stream, urgent=urgent, group=beam_size, size=request.frames
    )
    try:
        return await asyncio.wrap_future(loaded.scheduler.submit(job))
    except EngineError:
        raise
    except Exception as e:  # CTranslate2 or the decoder seam failed on the model's thread
        raise EngineError(
            f"the local speech model {loaded.name!r} failed to decode: {e}. Restart the kernel "
            "(or the command); if it persists, set STT_AGENT_LOCAL_MODEL to another model"
        ) from e
