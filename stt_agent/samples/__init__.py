"""The recordings shipped with the kit: short, real, licence-clean speech to try things on.

    from stt_agent import samples
    samples.names()                 # ['austen_0870', ..., 'jfk', ...]
    samples.path("jfk")             # a FLAC file inside the installed package
    samples.info("jfk").text        # what is said in it (the reference transcript)
    samples.load("jfk")             # int16 NumPy array, 16 kHz mono

They live inside the package (also when it is installed from a wheel), so notebooks and
examples never depend on where they were started from. Sources, licences and attribution:
`samples.info(name)` and README.md next to the files.
"""

from __future__ import annotations

import atexit
import contextlib
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np

__all__ = ["Sample", "UnknownSampleError", "info", "load", "names", "path"]

_PUBLIC_DOMAIN = "Public domain"
_CC_BY = "CC BY 4.0"
_LIBRIVOX = (
    "LibriVox volunteer reader of Jane Austen, Sense and Sensibility, chapter 1 (public domain "
    "recording, librivox.org); segment cut by CMU Sphinx (cmusphinx/pocketsphinx test data)"
)
_LIBRISPEECH = (
    "LibriSpeech ASR corpus (c) 2014 Vassil Panayotov, Guoguo Chen, Daniel Povey, Sanjeev "
    "Khudanpur, openslr.org/12, CC BY 4.0; converted to 16 kHz mono FLAC"
)


@dataclass(frozen=True)
class Sample:
    """One shipped recording: where it came from, under which licence, and what is said."""

    name: str
    seconds: float
    text: str  # the reference transcript, as published with the recording
    licence: str
    attribution: str
    source: str  # where the clip was taken from

    @property
    def path(self) -> Path:
        return path(self.name)


_CATALOGUE = {
    s.name: s
    for s in (
        Sample(
            "jfk",
            11.0,
            "And so my fellow Americans, ask not what your country can do for you, ask what "
            "you can do for your country.",
            _PUBLIC_DOMAIN + " (a work of the US federal government)",
            "John F. Kennedy, inaugural address, 20 January 1961",
            "openai/whisper test data, tests/jfk.flac",
        ),
        Sample(
            "austen_0870",
            7.1,
            "and mister john dashwood had then leisure to consider how much there might be "
            "prudently in his power to do for them",
            _PUBLIC_DOMAIN,
            _LIBRIVOX,
            "cmusphinx/pocketsphinx test/data/librivox/sense_and_sensibility_01_austen_64kb-0870",
        ),
        Sample(
            "austen_0880",
            2.99,
            "he was not an ill disposed young man",
            _PUBLIC_DOMAIN,
            _LIBRIVOX,
            "cmusphinx/pocketsphinx test/data/librivox/sense_and_sensibility_01_austen_64kb-0880",
        ),
        Sample(
            "austen_0890",
            5.3,
            "unless to be rather cold hearted and rather selfish is to be ill disposed",
            _PUBLIC_DOMAIN,
            _LIBRIVOX,
            "cmusphinx/pocketsphinx test/data/librivox/sense_and_sensibility_01_austen_64kb-0890",
        ),
        Sample(
            "austen_0920",
            6.05,
            # verbatim, with the reader's slip ("a more a amiable")
            "had he married a more a amiable woman he might have been made still more "
            "respectable than he was",
            _PUBLIC_DOMAIN,
            _LIBRIVOX,
            "cmusphinx/pocketsphinx test/data/librivox/sense_and_sensibility_01_austen_64kb-0920",
        ),
        Sample(
            "austen_0930",
            3.29,
            "he might even have been made amiable himself",
            _PUBLIC_DOMAIN,
            _LIBRIVOX,
            "cmusphinx/pocketsphinx test/data/librivox/sense_and_sensibility_01_austen_64kb-0930",
        ),
        Sample(
            "librispeech_2412",
            11.66,
            "IF THE READER WILL EXCUSE ME I WILL SAY NOTHING OF MY ANTECEDENTS NOR OF THE "
            "CIRCUMSTANCES WHICH LED ME TO LEAVE MY NATIVE COUNTRY THE NARRATIVE WOULD BE "
            "TEDIOUS TO HIM AND PAINFUL TO MYSELF",
            _CC_BY,
            _LIBRISPEECH,
            "LibriSpeech dev-clean 2412-153948-0000 (lhotse-speech/lhotse test fixtures)",
        ),
        Sample(
            "librispeech_1272",
            13.34,
            "THE CUT ON HIS CHEST STILL DRIPPING BLOOD THE ACHE OF HIS OVERSTRAINED EYES EVEN "
            "THE SOARING ARENA AROUND HIM WITH THE THOUSANDS OF SPECTATORS WERE TRIVIALITIES "
            "NOT WORTH THINKING ABOUT",
            _CC_BY,
            _LIBRISPEECH,
            "LibriSpeech dev-clean 1272-141231-0002 (microsoft/onnxruntime-extensions test data)",
        ),
        Sample(
            "ljspeech",
            7.66,
            "unless a system is established for the frequent formal review of activities "
            "thereunder. in this regard",
            _PUBLIC_DOMAIN,
            "LJ Speech Dataset 1.1, utterance LJ050-0131, Keith Ito and Linda Johnson (2017), "
            "keithito.com/LJ-Speech-Dataset; resampled to 16 kHz",
            "speechbrain/speechbrain tests/samples/TTS/LJ050-0131.wav",
        ),
    )
}

# Installed as a zip (rare), a resource has no file path: it is extracted once, kept for the
# life of the process, and removed at exit.
_extracted = contextlib.ExitStack()
atexit.register(_extracted.close)
_paths: dict[str, Path] = {}


class UnknownSampleError(LookupError):
    """A sample name that is not shipped; the message lists the ones that are."""

    def __init__(self, name: str) -> None:
        super().__init__(
            f"stt_agent.samples: no sample named {name!r}; the shipped ones are "
            f"{', '.join(names())} (see stt_agent.samples.names())"
        )
        self.name = name

    def __str__(self) -> str:  # KeyError-style quoting would wrap the message in quotes
        return str(self.args[0])


def names() -> list[str]:
    """The shipped samples' names, sorted."""
    return sorted(_CATALOGUE)


def info(name: str) -> Sample:
    """Licence, attribution, source, length and reference transcript of a sample."""
    try:
        return _CATALOGUE[name]
    except (KeyError, TypeError):
        raise UnknownSampleError(name) from None


def path(name: str) -> Path:
    """The sample's FLAC file (16 kHz mono): pass it anywhere a file path goes."""
    info(name)  # unknown names fail here, with the list of known ones
    if name not in _paths:
        resource = resources.files(__name__) / f"{name}.flac"
        if isinstance(resource, Path):
            _paths[name] = resource
        else:
            _paths[name] = _extracted.enter_context(resources.as_file(resource))
    found = _paths[name]
    if not found.is_file():
        raise FileNotFoundError(
            f"{found}: the sample {name!r} is missing from the installed package; "
            "reinstall stt-agent"
        )
    return found


def load(name: str) -> np.ndarray:
    """The sample decoded to int16 samples, 16 kHz mono (e.g. to build a longer recording)."""
    from ..audio import decode_pcm, probe  # the kit's own decoder (PyAV)

    file = path(name)
    return np.concatenate(list(decode_pcm(file, probe(file))))
