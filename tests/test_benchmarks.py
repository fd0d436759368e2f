"""`python -m benchmarks` end to end in its tiny mode (one short clip through every stage),
and the measuring sticks it relies on.

Only shapes and sanity are checked here, never speed: targets live in benchmarks/. The
benchmarks run on the larger scored set in ../shared/speech: without it these tests skip.
"""

from __future__ import annotations

import json
import wave

import numpy as np
import pytest

from benchmarks import __main__ as bench_cli
from benchmarks.baseline import locate
from benchmarks.clips import FRAME_S, end_of_speech, load_clip, load_clips, speech_onset
from benchmarks.noisy import LEAD_S, noisy_clip
from benchmarks.scoring import corpus_wer, mid_sentence_cuts, references, whisper_normalise
from benchmarks.speech import write_shipped
from stt_agent import samples
from tools.make_samples import CLIPS

REQUIRED = {
    "eos_to_caption_final_ms_p50": float,
    "eos_to_caption_final_ms_p95": float,
    "eos_to_turn_ms_p50": float,
    "eos_to_turn_ms_p95": float,
    "baseline_eos_to_caption_final_ms_p50": float,
    "baseline_eos_to_turn_ms_p50": float,
    "eos_to_final_ms_p50": float,
    "eos_to_final_ms_p95": float,
    "eos_to_final_left_out": int,
    "first_interim_ms_p50": (float, type(None)),
    "wer": float,
    "wer_project_normaliser": float,
    "wer_noisy": float,
    "rtf": float,
    "loop_lag_ms_p50": float,
    "loop_lag_ms_p99": float,
    "max_realtime_streams": int,
    "mid_sentence_cut_rate": float,
    "mid_sentence_cut_rate_vad_only": float,
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
    for key in ("wer", "baseline_wer", "wer_noisy", "mid_sentence_cut_rate"):
        assert 0.0 <= saved[key] <= 1.0, key
    for prefix in ("", "baseline_"):
        for metric in ("eos_to_final", "eos_to_caption_final"):
            p50, p95 = saved[f"{prefix}{metric}_ms_p50"], saved[f"{prefix}{metric}_ms_p95"]
            assert p50 <= p95
            assert -1000 < p50 < 30_000
        # A turn's words are final when it is delivered at the latest.
        assert saved[f"{prefix}eos_to_caption_final_ms_p50"] <= saved[f"{prefix}eos_to_turn_ms_p50"]
        assert saved[f"{prefix}rtf"] > 0
    counts = saved["counts"]
    assert counts["kit_pinned"] + saved["eos_to_final_left_out"] == counts["kit_finals"]
    assert counts["kit_finals"] >= 2  # the clip and its noisy version
    assert 0 <= saved["loop_lag_ms_p50"] <= saved["loop_lag_ms_p99"]
    assert saved["max_realtime_streams"] in (0, 1)
    assert saved["model_load_s"] > 0 and saved["import_s"] > 0
    assert saved["peak_rss_mb"] >= saved["kit_peak_rss_mb"] > 50
    machine = saved["machine"]
    assert machine["cores"] >= 1 and machine["cpu"] and machine["python"]
    assert machine["packages"]["livekit-agents"]
    assert set(saved["goals"]) >= {"eos_to_caption_final_ms_p50", "wer", "max_realtime_streams"}
    assert counts["kit_captions"] >= counts["kit_finals"] >= 2
    assert all(isinstance(g["met"], bool) for g in saved["goals"].values())
    assert saved["transcripts"]["kit"]["cmu_goforward.wav"]
    assert saved["transcripts"]["kit_noisy"]["noisy:cmu_goforward.wav"]

    png = (tmp_path / "latency.png").read_bytes()
    assert png.startswith(b"\x89PNG") and len(png) > 10_000

    # The human-readable table renders from the same result.
    table = bench_cli.report.table(saved)
    assert "EOS -> caption final p50" in table and "EOS -> turn p50" in table


def test_committed_results_are_written_only_when_asked(tmp_path):
    def where(*argv: str):
        return bench_cli.destination(bench_cli.parser().parse_args(list(argv)))

    assert where("--quick") is None
    assert where("--quick", "--json") is None
    assert where() is None  # a full run reports; it writes only with --write
    assert where("--write") == bench_cli.RESULTS
    assert where("--quick", "--out", str(tmp_path)) == tmp_path
    with pytest.raises(SystemExit, match="--quick run cannot replace"):
        where("--quick", "--write")


def test_end_of_speech_and_onset_come_from_the_audio(speech_dir):
    (clip,) = load_clips(["cmu_goforward.wav"])
    eos = end_of_speech(clip, 0.0, clip.duration_s)
    assert eos is not None and abs(eos.at_s - clip.duration_s) < 0.2 and not eos.clipped
    onset = speech_onset(clip, 0.0)
    assert onset is not None and onset < 0.6
    # A window inside continuous speech ends at the window's edge, and says so.
    inside = end_of_speech(clip, 1.0, 1.5)
    assert inside is not None and inside.clipped
    assert inside.at_s == pytest.approx(1.5 + 0.3, abs=FRAME_S / 2)


def test_a_noise_floor_above_minus_35_db_does_not_hide_pauses(speech_dir):
    """The JFK recording's crowd hiss sits above -35 dB re its loud speech; its pauses
    between phrases must still be found (they were not, with the -35 dB rule alone)."""
    (clip,) = load_clips(["jfk_inaugural_1961.wav"])
    assert 0.5 < clip.speech.mean() < 0.8
    # "And so my fellow Americans, [pause] ask not": speech ends well before the pause ends.
    eos = end_of_speech(clip, 0.0, 2.5)
    assert eos is not None and not eos.clipped and 1.9 < eos.at_s < 2.4


async def test_noisy_version_is_48k_stereo_and_keeps_the_clean_timeline(tmp_path, speech_dir):
    (clip,) = load_clips(["cmu_goforward.wav"])
    noisy = await noisy_clip(clip, tmp_path)
    with wave.open(str(noisy.path)) as w:
        assert (w.getframerate(), w.getnchannels(), w.getsampwidth()) == (48_000, 2, 2)
    lead = round(LEAD_S / FRAME_S)
    assert not noisy.speech[:lead].any()
    assert np.array_equal(noisy.speech[lead : lead + clip.speech.size], clip.speech)
    # Noise everywhere, including where the clean clip is silent.
    quiet = noisy.pcm[: int(LEAD_S * 16_000)].astype(np.float64)
    assert np.sqrt((quiet**2).mean()) > 30
    assert noisy.base_name == clip.name and noisy.reference == clip.reference


def test_whisper_normaliser_is_the_headline_one(speech_dir):
    refs = references()
    ref = refs["cmu_goforward.wav"]  # "go forward ten meters"
    assert corpus_wer([ref], ["Go forward 10 meters."], whisper_normalise) == 0.0
    assert whisper_normalise("Mr. John Dashwood") == whisper_normalise("mister john dashwood")


def test_cuts_are_turns_that_end_where_the_sentence_goes_on(speech_dir):
    refs = references()
    jfk = "jfk_inaugural_1961.wav"
    one_turn = mid_sentence_cuts(jfk, refs[jfk], [refs[jfk]])
    assert one_turn.count == 0 and one_turn.mid_sentence == (False,)
    split = mid_sentence_cuts(
        jfk,
        refs[jfk],
        ["And so my fellow Americans.", "Ask not what your country can do for you,", "ask what"],
    )
    assert split.mid_sentence == (True, True, False)
    assert split.where[0].endswith("americans")
    # LibriSpeech references carry no punctuation: the known sentence end is annotated.
    clip = "librispeech_dev_2412-153948-0000.wav"
    text = refs[clip].lower()
    at = text.index("country") + len("country")
    assert mid_sentence_cuts(clip, refs[clip], [text[:at], text[at:]]).count == 0
    assert mid_sentence_cuts(clip, refs[clip], [text[:20], text[20:]]).count == 1


def test_locate_finds_a_vad_buffer_in_the_clip(speech_dir):
    (clip,) = load_clips(["cmu_goforward.wav"])
    padded = np.concatenate([clip.pcm, np.zeros(16_000, np.int16)])
    assert locate(padded, padded[8_000:30_000]) == 8_000
    assert locate(padded, padded[-20_000:]) == padded.size - 20_000
    assert locate(padded, np.full(500, 12_345, np.int16)) is None


def test_eot_rules_count_sooner_turns_and_new_cuts():
    """An EOT rule ends a turn sooner only where EOT is sure at that silence, and turns a pause
    inside a sentence into a cut only when the pause lasted past the rule's silence."""
    from benchmarks.pauses import Pause, eot_rules

    def pause(silence, turn_end, sentence_end, p):
        return Pause("c", None, 0, silence, turn_end, sentence_end, eot={0.2: p})

    pauses = [
        pause(0.45, True, True, 0.9),  # a sentence end EOT is sure of: ends sooner
        pause(0.45, True, True, 0.3),  # one it is not: waits for the VAD
        pause(0.30, False, False, 0.9),  # a long comma pause EOT likes: a new cut
        pause(0.15, False, False, 0.9),  # a pause over before 200 ms: safe
    ]
    row = next(
        line.split() for line in eot_rules(pauses) if line.split()[:3] == ["0.80", "0.00", "0.20"]
    )
    assert row[3:6] == ["1/2", "1", "1"]
    assert float(row[6]) == pytest.approx(1 / 3, abs=1e-3)


def test_without_the_shared_set_the_benchmarks_use_the_shipped_samples(tmp_path):
    """A clone without ../shared still benchmarks: the shipped samples, written out as the
    16 kHz WAVs and transcripts.tsv the benchmarks read, under the shared set's file names."""
    folder = write_shipped(tmp_path)
    refs = references(folder)
    assert sorted(refs) == sorted(CLIPS.values())
    for sample, wav_name in CLIPS.items():
        assert refs[wav_name] == samples.info(sample).text
        clip = load_clip(folder / wav_name, refs[wav_name])
        assert np.array_equal(clip.pcm, samples.load(sample))
    # Written once: a second call keeps the files it finds.
    stamp = (folder / CLIPS["jfk"]).stat().st_mtime_ns
    assert write_shipped(tmp_path) == folder
    assert (folder / CLIPS["jfk"]).stat().st_mtime_ns == stamp
