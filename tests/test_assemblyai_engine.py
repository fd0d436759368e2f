"""The AssemblyAI path end to end: the kit's wiring and the real plugin, against the v3 stand-in.

The stand-in transcribes the audio it actually receives with the local engine, so these tests
prove that real audio flowed through `livekit-plugins-assemblyai`, not a script.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

import stt_agent
from benchmarks.scoring import normalise
from stt_agent import TranscriptFeed, Utterance, samples
from stt_agent.config import Secret, Settings
from stt_agent.engines import make_stt
from stt_agent.engines.assemblyai_simulator import whisper_words
from stt_agent.probes import probe_assemblyai
from tests.cli import clean_env, run_cli
from tests.standins.assemblyai_v3 import AssemblyAIStandIn

REPO = Path(__file__).resolve().parents[1]
KEY = "0123456789abcdef0123456789abcdef"


@pytest.fixture
async def aai() -> AsyncIterator[AssemblyAIStandIn]:
    async with AssemblyAIStandIn(transcribe=whisper_words(), api_key=KEY) as server:
        yield server


@pytest.fixture
async def engines() -> AsyncIterator[list]:
    """STTs made by a test; closed afterwards (they own an HTTP session outside a job)."""
    made: list = []
    yield made
    for engine in made:
        await engine.aclose()


def _settings(aai: AssemblyAIStandIn, key: str = KEY, **extra: object) -> Settings:
    return Settings(
        assemblyai_api_key=Secret(key),
        assemblyai_base_url=aai.base_url,
        assemblyai_min_turn_silence_ms=400,
        assemblyai_max_turn_silence_ms=1200,
        **extra,  # type: ignore[arg-type]
    )


async def test_interims_reach_the_feed_and_are_replaced_by_formatted_finals(aai, jfk, engines):
    settings = _settings(aai)
    assert settings.engine == "assemblyai"
    feed = TranscriptFeed()
    events: list[Utterance] = []
    feed.subscribe(lambda e: events.append(e) if isinstance(e, Utterance) else None)
    handle = await stt_agent.start_local(
        jfk, realtime=True, stt=_keep(engines, make_stt(settings)), feed=feed
    )
    finals = await asyncio.wait_for(handle.done(), 60)
    await handle.stop()

    assert handle.status.state == "stopped", handle.status
    text = normalise(" ".join(u.text for u in finals))
    assert "ask not what your country can do for you" in text
    first_final = next(i for i, e in enumerate(events) if e.final)
    assert any(not e.final for e in events[:first_final]), "no interim before the first final"
    assert feed.interim is None  # the final replaced the interim line
    for u in finals:  # format_turns=true: the formatted copy is what the learner sees
        assert u.text[0].isupper() and u.text.endswith("."), u.text
    # no utterance shown twice
    assert len({u.text for u in finals}) == len(finals)
    # the plugin sent the kit's settings
    query = aai.sessions[0].query
    assert query["speech_model"] == "universal-streaming-english"
    assert query["format_turns"] == "true"
    assert query["min_turn_silence"] == "400" and query["max_turn_silence"] == "1200"
    assert aai.sessions[0].audio_seconds > 10  # the whole recording went through


async def test_dropped_connection_is_retried_without_losing_or_repeating(aai, engines):
    clip = samples.path("librispeech_2412")
    aai.drop_next_session_after_first_partial()  # inside the first sentence
    handle = await stt_agent.start_local(
        clip, realtime=True, stt=_keep(engines, make_stt(_settings(aai)))
    )
    finals = await asyncio.wait_for(handle.done(), 60)
    await handle.stop()
    assert len(aai.sessions) >= 2 and aai.sessions[0].dropped
    text = normalise(" ".join(u.text for u in finals))
    # speech after the reconnect is transcribed
    assert "the narrative would be tedious to him" in text
    words = text.split()
    assert words.count("narrative") == 1 and words.count("tedious") == 1
    # the turn in flight when the connection dropped is not lost: its last interim is kept
    rescued = [u for u in finals if "recovered" in u.annotations]
    assert len(rescued) == 1 and "reader" in normalise(rescued[0].text)
    assert words.count("reader") == 1


async def test_wrong_key_fails_fast_with_one_clear_reason(aai, jfk, engines):
    handle = await stt_agent.start_local(
        jfk, realtime=True, stt=_keep(engines, make_stt(_settings(aai, key="f" * 32)))
    )
    await asyncio.wait_for(handle.done(), 60)
    assert handle.status.state == "error"
    assert "AssemblyAI at 127.0.0.1" in handle.status.error
    assert "refused the API key" in handle.status.error
    assert "f" * 32 not in handle.status.error
    assert aai.rejected <= 2  # no retry storm
    await handle.stop()


async def test_check_probe_validates_the_key(aai):
    good = await probe_assemblyai(_settings(aai))
    assert good.ok and "valid" in good.message
    bad = await probe_assemblyai(_settings(aai, key="e" * 32))
    assert not bad.ok and "rejected" in bad.message and "e" * 32 not in str(bad)


def _keep(made: list, engine):
    made.append(engine)
    return engine


async def test_cli_uses_assemblyai_and_reports_a_wrong_key_in_one_line(aai):
    clip = str(samples.path("austen_0880"))
    env = {"ASSEMBLYAI_API_KEY": KEY, "ASSEMBLYAI_BASE_URL": aai.base_url}
    ok = await asyncio.to_thread(
        run_cli, "transcribe", "--engine", "assemblyai", clip, env=clean_env(**env)
    )
    assert ok.returncode == 0, ok.stderr
    assert "young man" in normalise(ok.stdout)
    assert aai.sessions, "the CLI did not talk to the AssemblyAI endpoint"

    env["ASSEMBLYAI_API_KEY"] = "d" * 32
    bad = await asyncio.to_thread(run_cli, "transcribe", clip, env=clean_env(**env))
    assert bad.returncode == 1
    lines = bad.stderr.strip().splitlines()
    assert lines == [line for line in lines if line.startswith("stt-agent:")], bad.stderr
    assert len(lines) == 1 and "refused the API key" in lines[0]
    assert "Traceback" not in bad.stderr and "d" * 32 not in bad.stderr + bad.stdout
