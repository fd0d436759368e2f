"""The kit's AssemblyAI simulator, as notebook 05 uses it: the real plugin through `make_stt`,
a shipped recording, and output that follows the settings it simulates."""

from __future__ import annotations

import re

import pytest

import stt_agent
from benchmarks.scoring import corpus_wer
from stt_agent import samples
from stt_agent.engines.assemblyai_simulator import AssemblyAISimulator
from stt_agent.probes import probe_assemblyai


async def _finals(sim: AssemblyAISimulator, **settings: object) -> list[str]:
    engine = stt_agent.make_stt(sim.settings(**settings))
    try:
        utterances = await stt_agent.transcribe(samples.path("jfk"), stt=engine, realtime=True)
    finally:
        await engine.aclose()
    return [u.text for u in utterances]


async def test_format_turns_decides_between_formatted_and_raw_finals() -> None:
    async with AssemblyAISimulator() as sim:
        formatted = await _finals(sim, assemblyai_format_turns=True)
        raw = await _finals(sim, assemblyai_format_turns=False)
        queries = [s.query for s in sim.sessions]

    reference = samples.info("jfk").text
    for finals in (formatted, raw):
        assert finals and corpus_wer([reference], [" ".join(finals)]) < 0.25, finals
    # format_turns on: the recogniser's punctuation and casing, each final a sentence.
    assert all(f[0].isupper() and f[-1] in ".?!" for f in formatted), formatted
    assert "Americans" in " ".join(formatted), formatted  # proper nouns keep their capital
    # off: what AssemblyAI sends unformatted, lower case with no punctuation.
    assert all(re.fullmatch(r"[a-z0-9' -]+", f) for f in raw), raw
    assert [q["format_turns"] for q in queries] == ["true", "false"]


async def test_settings_point_the_kit_at_it_with_a_key_that_never_shows() -> None:
    async with AssemblyAISimulator() as sim:
        settings = sim.settings(assemblyai_max_turn_silence_ms=900)
        assert settings.engine == "assemblyai"
        assert settings.assemblyai_base_url == sim.url.replace("localhost", "127.0.0.1")
        assert settings.assemblyai_max_turn_silence_ms == 900
        key = sim.api_key.reveal()
        assert len(key) >= 16 and key not in repr(sim) + str(settings) + repr(settings)
        # `check` validates the key against the simulator's /v3/token, as with the service.
        assert (await probe_assemblyai(settings)).ok
        wrong = sim.settings(assemblyai_api_key=stt_agent.Secret("0" * 32))
        assert not (await probe_assemblyai(wrong)).ok
        assert sim.rejected == 1
    with pytest.raises(RuntimeError, match="not running"):
        sim.settings()
