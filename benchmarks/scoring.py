"""Word error rate as this project scores it, shared by the tests and the benchmarks.

Normalisation (documented in the README): lower-case; digits spelled out in words
(num2words, so Whisper's "10" matches the reference "ten"); hyphens become spaces;
apostrophes are dropped ("dashwood's" -> "dashwoods"); every other punctuation mark is
removed; runs of white space collapse to one space.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path

import jiwer
from num2words import num2words

SPEECH_DIR = Path(__file__).resolve().parents[1].parent / "shared" / "speech"


def normalise(text: str) -> str:
    text = text.lower().replace("-", " ")
    text = re.sub(r"\d+", lambda m: " " + num2words(int(m.group())) + " ", text)
    text = text.replace("'", "").replace("’", "")
    text = re.sub(r"[^\w\s]", " ", text)
    return " ".join(text.split())


def corpus_wer(references: Iterable[str], hypotheses: Iterable[str]) -> float:
    """WER over the whole corpus (errors summed over clips / reference words summed)."""
    refs = [normalise(r) for r in references]
    hyps = [normalise(h) for h in hypotheses]
    return float(jiwer.wer(refs, hyps))


def references(speech_dir: Path = SPEECH_DIR) -> dict[str, str]:
    """file name -> reference text, from transcripts.tsv."""
    rows = (speech_dir / "transcripts.tsv").read_text(encoding="utf-8").splitlines()
    return dict(row.split("\t", 1) for row in rows if row.strip())
