"""Latencies and turn quality of real-time runs, against the speech in the audio (`clips.py`).

* EOS -> final: `u.received_at - (first_frame_at + EOS)`, per final utterance. Finals whose
  EOS lies on the search window's edge (speech runs on past it, so the true EOS is unknown
  and the latency an underestimate) are kept apart: the headline counts only the others,
  "pinned down".
* EOS -> caption final: the same against each caption final (the final transcript of the
  speech before a pause, which may come before its turn ends), pinned-down EOS only for the
  headline. EOS -> final of a turn is `eos_to_turn` in the report.
* onset -> first interim: the first interim after the previous final, against the first
  speech frame at or after `u.start - 0.3 s` (and after the previous final's end, so the
  last words of the previous turn are not taken for this one's onset). Utterances whose
  final came before any interim have no sample here (they are counted).
* interim revisions: an interim update (or the final that replaces the interims) revises
  when the words shown before are not a prefix of the words shown after (the flicker a
  reader sees), normalised so case and punctuation do not count.
* turns cut mid-sentence: `scoring.mid_sentence_cuts` on the run's finals, with the pause the
  speaker actually made there (from the clean audio) kept beside each cut.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .clips import FRAME_S, end_of_speech, speech_onset
from .runs import RunRecord
from .scoring import mid_sentence_cuts, normalise


@dataclass
class Latencies:
    eos_to_final_ms: list[float] = field(default_factory=list)
    eos_clipped_flags: list[bool] = field(default_factory=list)  # one per eos_to_final_ms
    eos_to_caption_ms: list[float] = field(default_factory=list)
    caption_clipped_flags: list[bool] = field(default_factory=list)  # one per eos_to_caption_ms
    captions: int = 0
    first_interim_ms: list[float] = field(default_factory=list)
    finals: int = 0
    without_interim: int = 0
    untimed: int = 0  # finals with no audio span or no speech in it
    eos_clipped: int = 0  # speech ran to the end of the search window
    interim_updates: int = 0  # interim events and finals that replaced interims
    interim_revisions: int = 0
    cuts: int = 0  # finals ending where the reference's sentence goes on
    cut_pauses_s: list[float] = field(default_factory=list)  # the speaker's pause at each cut
    cut_where: list[str] = field(default_factory=list)

    def extend(self, other: Latencies) -> None:
        for name, value in vars(other).items():
            setattr(self, name, getattr(self, name) + value)

    @property
    def eos_to_final_pinned_ms(self) -> list[float]:
        """Only the finals whose EOS the audio pins down (see `clips.end_of_speech`)."""
        pairs = zip(self.eos_to_final_ms, self.eos_clipped_flags, strict=True)
        return [v for v, clipped in pairs if not clipped]

    @property
    def eos_to_caption_pinned_ms(self) -> list[float]:
        pairs = zip(self.eos_to_caption_ms, self.caption_clipped_flags, strict=True)
        return [v for v, clipped in pairs if not clipped]


def _pause_after(record: RunRecord, at_s: float) -> float:
    """Seconds of non-speech in the clip after `at_s` (to the next speech frame or the end)."""
    speech = record.clip.speech
    first = min(speech.size, int(np.ceil(at_s / FRAME_S)))
    hits = np.flatnonzero(speech[first:])
    return (speech.size - first if hits.size == 0 else int(hits[0])) * FRAME_S


def _revises(before: str, after: str) -> bool:
    old, new = normalise(before).split(), normalise(after).split()
    return new[: len(old)] != old


def measure(record: RunRecord) -> Latencies:
    if not record.realtime or record.first_frame_at is None:
        raise ValueError("latency needs a real-time paced run")
    out = Latencies()
    t0 = record.first_frame_at
    first_interim = None
    shown = None  # the interim text on screen
    previous_end = 0.0
    for event in record.events:
        if not event.final:
            if first_interim is None:
                first_interim = event
            if shown is not None:
                out.interim_updates += 1
                out.interim_revisions += _revises(shown, event.text)
            shown = event.text
            continue
        out.finals += 1
        if shown is not None:
            out.interim_updates += 1
            out.interim_revisions += _revises(shown, event.text)
        u, interim, first_interim, shown = event, first_interim, None, None
        if u.start is None or u.end is None or u.end <= u.start:
            out.untimed += 1
            continue
        eos = end_of_speech(record.clip, u.start, u.end)
        onset = speech_onset(record.clip, max(u.start, previous_end + 0.3))
        previous_end = u.end
        if eos is None:
            out.untimed += 1
            continue
        out.eos_clipped += eos.clipped
        out.eos_clipped_flags.append(eos.clipped)
        out.eos_to_final_ms.append((u.received_at - (t0 + eos.at_s)) * 1000)
        if interim is None or onset is None:
            out.without_interim += 1
        else:
            out.first_interim_ms.append((interim.received_at - (t0 + onset)) * 1000)
    for c in record.captions:
        out.captions += 1
        caption_eos = None
        if c.start is not None and c.end is not None and c.end > c.start:
            caption_eos = end_of_speech(record.clip, c.start, c.end)
        if caption_eos is not None:
            out.caption_clipped_flags.append(caption_eos.clipped)
            out.eos_to_caption_ms.append((c.received_at - (t0 + caption_eos.at_s)) * 1000)
    finals = record.finals
    cuts = mid_sentence_cuts(record.clip.base_name, record.clip.reference, [u.text for u in finals])
    words = [u for u in finals if normalise(u.text)]
    where = iter(cuts.where)
    for u, cut in zip(words, cuts.mid_sentence, strict=True):
        if cut:
            out.cuts += 1
            out.cut_where.append(next(where))
            end = u.end if u.end is not None else 0.0
            eos = end_of_speech(record.clip, u.start or 0.0, end)
            out.cut_pauses_s.append(_pause_after(record, eos.at_s if eos else end))
    return out


def percentile(values: list[float], q: float) -> float | None:
    return float(np.percentile(values, q)) if values else None
