"""`python -m benchmarks` end to end in its tiny mode (one short clip through every stage).

Only shapes and sanity are checked here, never speed: targets live in benchmarks/. The
benchmarks run on the larger scored set in ../shared/speech: without it these tests skip.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from benchmarks import __main__ as bench_cli
from benchmarks.baseline import locate
from benchmarks.clips import FRAME_S, end_of_speech, load_clips, speech_onset

REQUIRED = {
    "eos_to_final_ms_p50": float,
    "eos_to_final_ms_p95": float,
    "first_interim_ms_p50": (float, type(None)),
    "wer": float,
    "rtf": float,
    "loop_lag_ms_p50": float,
    "loop_lag_ms_p99": float,
    "max_realtime_streams": int,
    "baseline_eos_to_final_ms_p50": float,
    "baseline_eos_to_final_ms_p95": float,
    "baseline_wer": float,
    "baseline_rtf": float,
    "model_load_s": float,
    "import_s": float,
    "peak_rss_mb": float,
    "quick": bool,
    "machine": dict,
}


def test_tiny_run_writes_json_table_and_plot(tmp_path, capsys, speech_dir):
    assert bench_cli.main(["--tiny", "--json", "--out", str(tmp_path)]) == 0
    printed = json.loads(capsys.readouterr().out)
    saved = json.loads((tmp_path / "latest.json").read_text())
    assert printed == saved

    for key, kind in REQUIRED.items():
        assert isinstance(saved[key], kind), (key, saved[key])
    assert saved["quick"] is True
    assert 0.0 <= saved["wer"] <= 1.0 and 0.0 <= saved["baseline_wer"] <= 1.0
    for prefix in ("", "baseline_"):
        p50, p95 = saved[f"{prefix}eos_to_final_ms_p50"], saved[f"{prefix}eos_to_final_ms_p95"]
        assert p50 <= p95
        assert -1000 < p50 < 30_000
        assert saved[f"{prefix}rtf"] > 0
    assert 0 <= saved["loop_lag_ms_p50"] <= saved["loop_lag_ms_p99"]
    assert saved["max_realtime_streams"] in (0, 1)
    assert saved["model_load_s"] > 0 and saved["import_s"] > 0
    assert saved["peak_rss_mb"] >= saved["kit_peak_rss_mb"] > 50
    machine = saved["machine"]
    assert machine["cores"] >= 1 and machine["cpu"] and machine["python"]
    assert machine["packages"]["livekit-agents"]
    assert set(saved["goals"]) >= {"eos_to_final_ms_p50", "wer", "max_realtime_streams"}
    assert all(isinstance(g["met"], bool) for g in saved["goals"].values())
    assert saved["transcripts"]["kit"]["cmu_goforward.wav"]

    png = (tmp_path / "latency.png").read_bytes()
    assert png.startswith(b"\x89PNG") and len(png) > 10_000

    # The human-readable table renders from the same result.
    table = bench_cli.report.table(saved)
    assert "EOS -> final p50" in table and "baseline" in table


def test_end_of_speech_and_onset_come_from_the_audio(speech_dir):
    (clip,) = load_clips(["cmu_goforward.wav"])
    eos = end_of_speech(clip, 0.0, clip.duration_s)
    assert eos is not None and abs(eos.at_s - clip.duration_s) < 0.2 and not eos.clipped
    onset = speech_onset(clip, 0.0)
    assert onset is not None and onset < 0.3
    # A window inside continuous speech ends at the window's edge, and says so.
    inside = end_of_speech(clip, 0.5, 1.0)
    assert inside is not None and inside.clipped
    assert inside.at_s == pytest.approx(1.0 + 0.3, abs=FRAME_S / 2)


def test_locate_finds_a_vad_buffer_in_the_clip(speech_dir):
    (clip,) = load_clips(["cmu_goforward.wav"])
    padded = np.concatenate([clip.pcm, np.zeros(16_000, np.int16)])
    assert locate(padded, padded[8_000:30_000]) == 8_000
    assert locate(padded, padded[-20_000:]) == padded.size - 20_000
    assert locate(padded, np.full(500, 12_345, np.int16)) is None
