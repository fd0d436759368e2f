"""Word error rate, shared by the tests and the benchmarks, and turns cut mid-sentence.

Two normalisations:

* **Whisper's English text normaliser** (`whisper_normalise`, the `whisper-normalizer`
  package: OpenAI's `EnglishTextNormalizer` as published with Whisper) is the field's
  convention, so the benchmark's headline WER is comparable with published figures. It
  spells "mister" / "mr" the same, writes numbers as digits ("ten" and "10" both become
  "10"), standardises British/American spellings, and removes punctuation and fillers.
* **The project's own** (`normalise`, kept beside it and used by the tests): lower-case;
  digits spelled out in words (num2words, so Whisper's "10" matches the reference "ten");
  hyphens become spaces; apostrophes are dropped ("dashwood's" -> "dashwoods"); every other
  punctuation mark is removed; runs of white space collapse to one space.

Corpus WER is errors summed over clips divided by reference words summed.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import jiwer
from num2words import num2words

from .speech import TRANSCRIPTS
from .speech import speech_dir as _speech_dir

Normaliser = Callable[[str], str]


def normalise(text: str) -> str:
    """The project's normalisation (see the module docstring)."""
    text = text.lower().replace("-", " ")
    text = re.sub(r"\d+", lambda m: " " + num2words(int(m.group())) + " ", text)
    text = text.replace("'", "").replace("’", "")
    text = re.sub(r"[^\w\s]", " ", text)
    return " ".join(text.split())


@functools.cache
def _whisper_normaliser() -> Normaliser:
    from whisper_normalizer.english import EnglishTextNormalizer

    return EnglishTextNormalizer()


def whisper_normalise(text: str) -> str:
    """Whisper's English text normaliser, white space collapsed."""
    return " ".join(_whisper_normaliser()(text).split())


def corpus_wer(
    references: Iterable[str], hypotheses: Iterable[str], normaliser: Normaliser = normalise
) -> float:
    """WER over the whole corpus (errors summed over clips / reference words summed)."""
    refs = [normaliser(r) for r in references]
    hyps = [normaliser(h) for h in hypotheses]
    return float(jiwer.wer(refs, hyps))


def references(speech_dir: Path | None = None) -> dict[str, str]:
    """file name -> reference text, from transcripts.tsv (of `speech.speech_dir()` by default)."""
    folder = speech_dir if speech_dir is not None else _speech_dir()
    rows = (folder / TRANSCRIPTS).read_text(encoding="utf-8").splitlines()
    return dict(row.split("\t", 1) for row in rows if row.strip())


# --- turns cut mid-sentence --------------------------------------------------------------------

# Sentence ends that the references do not mark: LibriSpeech's transcripts are upper case with
# no punctuation. From the book's text ("...to leave my native country. The narrative would
# be tedious..."), the only clip here with two sentences.
UNMARKED_SENTENCE_ENDS = {"librispeech_dev_2412-153948-0000.wav": ("native country",)}
_SENTENCE_FINAL = re.compile(r"[.!?;:]$")


@dataclass(frozen=True)
class Cuts:
    """Which turns of one run end where the reference's sentence goes on."""

    mid_sentence: tuple[bool, ...]  # one per turn with words; the last turn is never a cut
    where: tuple[str, ...]  # the reference words each cut came after, for the report

    @property
    def count(self) -> int:
        return sum(self.mid_sentence)


def _reference_words(clip: str, reference: str) -> tuple[list[str], list[bool]]:
    """Normalised reference words, and whether a sentence ends after each."""
    words: list[str] = []
    ends: list[bool] = []
    for token in reference.split():
        pieces = normalise(token).split()
        words += pieces
        ends += [False] * len(pieces)
        if pieces and _SENTENCE_FINAL.search(token):
            ends[-1] = True
    for phrase in UNMARKED_SENTENCE_ENDS.get(clip, ()):
        target = normalise(phrase).split()
        for i in range(len(words) - len(target) + 1):
            if words[i : i + len(target)] == target:
                ends[i + len(target) - 1] = True
    if ends:
        ends[-1] = True  # the clip ends
    return words, ends


def mid_sentence_cuts(clip: str, reference: str, finals: Sequence[str]) -> Cuts:
    """How many of `finals` (the turns of one run, in order) end where the reference's
    sentence goes on. Each turn's last word is aligned to the reference (jiwer's alignment of
    the whole run); an inserted word counts at the reference word before it."""
    ref_words, ref_ends = _reference_words(clip, reference)
    turn_words = [normalise(text).split() for text in finals]
    turn_words = [w for w in turn_words if w]
    hyp = [w for words in turn_words for w in words]
    if not ref_words or not hyp:
        return Cuts((False,) * len(turn_words), ())
    position = [-1] * len(hyp)  # hypothesis word -> reference word index
    out = jiwer.process_words(" ".join(ref_words), " ".join(hyp))
    for chunk in out.alignments[0]:
        for h in range(chunk.hyp_start_idx, chunk.hyp_end_idx):
            if chunk.type in ("equal", "substitute"):
                position[h] = chunk.ref_start_idx + (h - chunk.hyp_start_idx)
            else:  # insert
                position[h] = chunk.ref_start_idx - 1
    flags: list[bool] = []
    where: list[str] = []
    last = -1
    for words in turn_words[:-1]:
        last += len(words)
        r = position[last]
        cut = r >= 0 and not ref_ends[r]
        flags.append(cut)
        if cut:
            where.append(" ".join(ref_words[max(0, r - 2) : r + 1]))
    return Cuts((*flags, False), tuple(where))
