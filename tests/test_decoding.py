"""The local engine's decoding: the encoder window adapts to a crowded batch of finals."""

from __future__ import annotations

import pytest

from benchmarks.scoring import corpus_wer
from stt_agent import samples

ASK_NOT = "ask not what your country can do for you"  # 3.0-7.3 s into the JFK sample


@pytest.mark.parametrize(("batch", "frames"), [(1, 1200), (3, 1200), (4, 800), (8, 800)])
def test_a_crowded_batch_of_finals_gets_the_shorter_window_and_the_same_words(
    batch, frames, monkeypatch
):
    from faster_whisper.audio import decode_audio

    from stt_agent.engines.decoding import CROWDED_BATCH, FINAL_WINDOW, Request, decode
    from stt_agent.engines.weights import BUNDLED_MODEL_NAME, load_whisper

    assert CROWDED_BATCH == 4
    loaded = load_whisper(BUNDLED_MODEL_NAME)
    seen: list[tuple[int, ...]] = []
    encode = loaded.model.encode

    def recording_encode(features, *args, **kwargs):
        seen.append(features.shape)
        return encode(features, *args, **kwargs)

    monkeypatch.setattr(loaded.model, "encode", recording_encode)
    audio = decode_audio(str(samples.path("jfk")), sampling_rate=16000)[48000:116800]
    results = decode(loaded, [Request(audio, 3, FINAL_WINDOW, "en", False)] * batch)
    assert seen[0] == (batch, seen[0][1], frames)  # the encoder saw that many mel frames
    for decoded in results:
        assert corpus_wer([ASK_NOT], [decoded.text]) <= 0.1, decoded.text
