"""Latencies of real-time runs against the speech in the audio (see `clips.py` for EOS).

* EOS -> final: `u.received_at - (first_frame_at + EOS)`, per final utterance.
* onset -> first interim: the first interim after the previous final, against the first
  speech frame at or after `u.start - 0.3 s` of the final it leads to. Utterances whose final
  came before any interim have no sample here (they are counted).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .clips import end_of_speech, speech_onset
from .runs import RunRecord


@dataclass
class Latencies:
    eos_to_final_ms: list[float] = field(default_factory=list)
    eos_clipped_flags: list[bool] = field(default_factory=list)  # one per eos_to_final_ms
    first_interim_ms: list[float] = field(default_factory=list)
    finals: int = 0
    without_interim: int = 0
    untimed: int = 0  # finals with no audio span or no speech in it
    eos_clipped: int = 0  # speech ran to the end of the search window (noise floor > threshold)

    def extend(self, other: Latencies) -> None:
        self.eos_to_final_ms += other.eos_to_final_ms
        self.eos_clipped_flags += other.eos_clipped_flags
        self.first_interim_ms += other.first_interim_ms
        self.finals += other.finals
        self.without_interim += other.without_interim
        self.untimed += other.untimed
        self.eos_clipped += other.eos_clipped

    @property
    def eos_to_final_unclipped_ms(self) -> list[float]:
        """Only the finals whose EOS the audio pins down (see `clips.end_of_speech`)."""
        pairs = zip(self.eos_to_final_ms, self.eos_clipped_flags, strict=True)
        return [v for v, clipped in pairs if not clipped]


def measure(record: RunRecord) -> Latencies:
    if not record.realtime or record.first_frame_at is None:
        raise ValueError("latency needs a real-time paced run")
    out = Latencies()
    t0 = record.first_frame_at
    first_interim = None
    for event in record.events:
        if not event.final:
            if first_interim is None:
                first_interim = event
            continue
        out.finals += 1
        u, interim, first_interim = event, first_interim, None
        if u.start is None or u.end is None or u.end <= u.start:
            out.untimed += 1
            continue
        eos = end_of_speech(record.clip, u.start, u.end)
        if eos is None:
            out.untimed += 1
            continue
        out.eos_clipped += eos.clipped
        out.eos_clipped_flags.append(eos.clipped)
        out.eos_to_final_ms.append((u.received_at - (t0 + eos.at_s)) * 1000)
        onset = speech_onset(record.clip, u.start)
        if interim is None or onset is None:
            out.without_interim += 1
        else:
            out.first_interim_ms.append((interim.received_at - (t0 + onset)) * 1000)
    return out


def percentile(values: list[float], q: float) -> float | None:
    return float(np.percentile(values, q)) if values else None
