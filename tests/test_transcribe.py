"""Local mode end to end on real recordings: the Transcriber in an AgentSession.

Accuracy is scored on the kit's nine shipped samples everywhere, and on the larger set in
../shared/speech (ten clips) when it is beside the clone.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import numpy as np
import pytest

from benchmarks.scoring import corpus_wer, normalise
from stt_agent import TranscriptFeed, Utterance, samples, transcribe, transcribe_file
from stt_agent.audio import FileSource
from tests.cli import run_cli

REPO = Path(__file__).resolve().parents[1]
CORPUS_WER_LIMIT = 0.08


@pytest.fixture(scope="module")
def sample_results(local_stt):
    """Every shipped sample transcribed once (as fast as possible)."""

    async def run_all() -> dict[str, list[Utterance]]:
        return {
            name: await transcribe_file(samples.path(name), stt=local_stt)
            for name in samples.names()
        }

    return asyncio.run(run_all())


@pytest.fixture(scope="module")
def corpus_results(speech_dir, reference_texts, local_stt):
    """Every clip transcribed once (as fast as possible), shared by the accuracy tests."""

    async def run_all() -> dict[str, list[Utterance]]:
        return {
            name: await transcribe_file(speech_dir / name, stt=local_stt)
            for name in reference_texts
        }

    return asyncio.run(run_all())


def test_jfk_says_ask_not(sample_results):
    text = normalise(" ".join(u.text for u in sample_results["jfk"]))
    assert "ask not what your country can do for you" in text


def test_shipped_samples_wer_is_within_limit(sample_results):
    names = samples.names()
    hyps = [" ".join(u.text for u in sample_results[n]) for n in names]
    wer = corpus_wer([samples.info(n).text for n in names], hyps)
    print(f"WER {wer:.3%} over the {len(names)} shipped samples")
    assert wer <= CORPUS_WER_LIMIT


def test_corpus_wer_is_within_limit(corpus_results, reference_texts):
    names = list(reference_texts)
    hyps = [" ".join(u.text for u in corpus_results[n]) for n in names]
    wer = corpus_wer([reference_texts[n] for n in names], hyps)
    print(f"corpus WER {wer:.3%} over {len(names)} clips")
    assert wer <= CORPUS_WER_LIMIT


def test_utterances_are_timed_in_audio_seconds(sample_results):
    utterances = sample_results["jfk"]
    assert len(utterances) >= 2  # the passage has pauses: more than one turn
    for u in utterances:
        assert u.final and u.participant == "local"
        assert u.source and u.source.endswith("jfk.flac")
        assert 0.0 <= u.start < u.end <= 11.5
        # Crunched faster than real time: "end of speech -> text" has no meaning (null).
        assert u.latency_s is None
    starts = [u.start for u in utterances]
    assert starts == sorted(starts)


async def test_realtime_stream_shows_growing_interims_before_each_final(local_stt):
    """While someone speaks, interim text comes before the final, follows the audio forward,
    and the final replaces it. How often interims come is a speed, measured in benchmarks/
    (it depends on the machine's load), so it is not asserted here."""
    feed = TranscriptFeed()
    events: list[Utterance] = []
    feed.subscribe(lambda e: events.append(e) if isinstance(e, Utterance) else None)
    clip = samples.path("librispeech_1272")  # 13 s of continuous reading
    finals = await transcribe(FileSource(clip, realtime=True), stt=local_stt, feed=feed)
    assert finals
    first_final = next(i for i, u in enumerate(events) if u.final)
    before = events[:first_final]
    assert len(before) >= 2, [u.text for u in events]
    ends = [u.end for u in before]
    assert ends == sorted(ends) and ends[-1] > ends[0], ends  # each covers more of the audio
    # the final replaces the interim, and the interim was on its way to the same words
    assert feed.interim is None
    assert set(normalise(before[-1].text).split()) & set(normalise(finals[0].text).split())


async def test_numpy_array_source(local_stt):
    pcm = samples.load("austen_0880")  # int16, 16 kHz
    # at 8 kHz, as float: resampled and converted on the way in
    floats = pcm[::2].astype(np.float32) / 32768.0
    finals = await transcribe(floats, sample_rate=8000, stt=local_stt)
    assert "young man" in normalise(" ".join(u.text for u in finals))


def test_cli_transcribes_and_reports_bad_files(tmp_path, jfk):
    bad = tmp_path / "notes.wav"
    bad.write_text("this is not audio")
    result = run_cli("transcribe", str(jfk), str(tmp_path / "missing.mp3"), str(bad))
    assert result.returncode == 2
    # one line per utterance, "[start → end] text": the words, without the times
    words = " ".join(line.split("] ", 1)[1] for line in result.stdout.splitlines())
    assert "ask not what your country can do for you" in normalise(words)
    errors = result.stderr.strip().splitlines()
    problem_lines = [line for line in errors if line.startswith("stt-agent:")]
    assert len(problem_lines) == 2, result.stderr
    assert any("missing.mp3" in line and "no such file" in line for line in problem_lines)
    assert any(
        "notes.wav" in line and "not a readable audio file" in line for line in problem_lines
    )
    assert "Traceback" not in result.stderr
    assert "Deprecat" not in result.stderr


def test_cli_json_lines(jfk):
    result = run_cli("transcribe", "--json", str(jfk))
    assert result.returncode == 0, result.stderr
    records = [json.loads(line) for line in result.stdout.splitlines()]
    assert records
    for r in records:
        assert {"file", "text", "start", "end", "latency_ms"} <= r.keys()
        assert r["file"].endswith("jfk.flac")
        assert r["start"] < r["end"]


def test_cli_help_lists_the_livekit_commands():
    result = run_cli("--help")
    assert result.returncode == 0
    for command in ("dev", "start", "console", "connect", "download-files", "transcribe", "check"):
        assert command in result.stdout


def test_livekit_dev_command_reaches_livekitsrun_cli():
    """`dev --help` is answered by LiveKit's own CLI, as in the tutorial's `stt_agent.py dev`."""
    result = run_cli("dev", "--help")
    assert result.returncode == 0, result.stderr
    assert "--url" in result.stdout and "--api-key" in result.stdout
