"""AssemblyAI settings reach the installed plugin, and `check` catches combinations it refuses."""

from __future__ import annotations

import pytest

from stt_agent.config import Secret, Settings, load_settings
from stt_agent.engines.assemblyai import MODES, SPEECH_MODELS, U3_PRO_MODELS, make_assemblyai_stt

KEY = Secret("k" * 32)


def _problems(**settings: object) -> list[str]:
    return [p.variable for p in Settings(assemblyai_api_key=KEY, **settings).problems()]


def test_models_and_modes_are_the_plugins_own():
    assert {"universal-streaming-english", "universal-streaming-multilingual"} <= set(SPEECH_MODELS)
    assert "universal-3-6-pro" in U3_PRO_MODELS and set(U3_PRO_MODELS) <= set(SPEECH_MODELS)
    assert set(MODES) == {"min_latency", "balanced", "max_accuracy"}


def test_settings_from_the_environment_reach_the_plugin():
    settings = load_settings(
        environ={
            "ASSEMBLYAI_API_KEY": KEY.reveal(),
            "ASSEMBLYAI_SPEECH_MODEL": "universal-3-6-pro",
            "ASSEMBLYAI_MODE": "max_accuracy",
            "ASSEMBLYAI_LANGUAGES": "en, es",
            "ASSEMBLYAI_SPEAKER_LABELS": "true",
            "ASSEMBLYAI_MIN_TURN_SILENCE_MS": "300",
        }
    )
    assert settings.problems() == []
    opts = make_assemblyai_stt(settings)._opts
    assert opts.speech_model == "universal-3-6-pro"
    assert opts.mode == "max_accuracy"
    assert opts.language_codes == ["en", "es"]
    assert opts.speaker_labels is True
    assert opts.min_turn_silence == 300

    streaming = load_settings(
        environ={
            "ASSEMBLYAI_API_KEY": KEY.reveal(),
            "ASSEMBLYAI_SPEECH_MODEL": "universal-streaming-multilingual",
            "ASSEMBLYAI_END_OF_TURN_CONFIDENCE": "0.7",
        }
    )
    assert streaming.problems() == []
    opts = make_assemblyai_stt(streaming)._opts
    assert opts.speech_model == "universal-streaming-multilingual"
    assert opts.end_of_turn_confidence_threshold == 0.7


def test_check_names_what_the_plugin_would_refuse():
    assert _problems(assemblyai_speech_model="universal-streaming-4") == ["ASSEMBLYAI_SPEECH_MODEL"]
    # presets and language steering exist only for the Universal-3 Pro family
    assert _problems(assemblyai_mode="balanced") == ["ASSEMBLYAI_MODE"]
    assert _problems(assemblyai_languages=("es",)) == ["ASSEMBLYAI_LANGUAGES"]
    assert _problems(assemblyai_speech_model="universal-3-6-pro", assemblyai_mode="fast") == [
        "ASSEMBLYAI_MODE"
    ]
    assert _problems(assemblyai_end_of_turn_confidence=1.5) == ["ASSEMBLYAI_END_OF_TURN_CONFIDENCE"]
    bad = load_settings(
        environ={"ASSEMBLYAI_API_KEY": KEY.reveal(), "ASSEMBLYAI_END_OF_TURN_CONFIDENCE": "high"}
    )
    assert [p.variable for p in bad.problems()] == ["ASSEMBLYAI_END_OF_TURN_CONFIDENCE"]


def test_settings_the_plugin_refuses_are_one_config_error_that_names_them():
    from stt_agent import ConfigError

    settings = Settings(
        assemblyai_api_key=KEY,
        assemblyai_speech_model="universal-streaming-english",
        assemblyai_mode="max_accuracy",  # Universal-3 Pro only
    )
    with pytest.raises(ConfigError) as refused:
        make_assemblyai_stt(settings)
    message = str(refused.value)
    assert "'mode'" in message and "ASSEMBLYAI_" in message and "check" in message
    assert KEY.reveal() not in message


def test_an_unknown_engine_is_a_config_error_that_says_what_to_use():
    from stt_agent import ConfigError, make_stt

    with pytest.raises(ConfigError, match=r"use 'local' or 'assemblyai'.*STT_AGENT_ENGINE"):
        make_stt(Settings(), engine="whisper")
