"""A local run ends by its progress record, never by a clock: slow recognisers, stalled
services, truncated files and silence all end the way the record says, with no timing asserts.
"""

from __future__ import annotations

import asyncio
import wave
from collections.abc import AsyncIterator

import numpy as np
import pytest
from aiohttp import web

from benchmarks.scoring import corpus_wer, normalise
from stt_agent import TranscriptFeed, Utterance, samples
from stt_agent.audio import SAMPLE_RATE, ArraySource, AudioSourceError, FileSource
from stt_agent.config import Secret, Settings
from stt_agent.engines import load_whisper, make_stt
from stt_agent.local import EngineError, LocalRun
from stt_agent.progress import MAX_UNHEARD_S


def _speech(*names: str, gap_s: float = 0.8) -> np.ndarray:
    """Several shipped recordings back to back, as 16 kHz floats, with pauses between them."""
    parts = []
    for name in names:
        parts.append(samples.load(name).astype(np.float32) / 32768.0)
        parts.append(np.zeros(int(gap_s * SAMPLE_RATE), np.float32))
    return np.concatenate(parts)


CLIPS = ("jfk", "librispeech_2412", "austen_0870")


async def test_a_recogniser_slower_than_decoding_still_gets_every_word(local_stt, monkeypatch):
    """The decoder waits for the recogniser (backpressure), and the run ends only when the
    last utterance is through: nothing is cut off, however slow the speech model is."""
    loaded = load_whisper(local_stt.model)
    decode = loaded.decoder  # the public seam: what the model's thread runs on each batch

    def slow_decode(*args, **kwargs):
        import time

        time.sleep(0.4)  # a model much slower than PyAV decoding
        return decode(*args, **kwargs)

    monkeypatch.setattr(loaded, "decoder", slow_decode)
    audio = _speech(*CLIPS)
    run = LocalRun(
        source=ArraySource(audio, name="three clips"), stt=local_stt, feed=TranscriptFeed()
    )
    finals = await run.run()

    reference = " ".join(samples.info(name).text for name in CLIPS)
    hypothesis = " ".join(u.text for u in finals)
    assert corpus_wer([reference], [hypothesis]) <= 0.12, hypothesis
    assert normalise(finals[-1].text).split()[-1] == normalise(reference).split()[-1]
    progress = run.progress
    assert progress.delivered == len(finals) and progress.turns_open == 0
    # the source never ran more than the allowed backlog ahead of the VAD
    assert progress.peak_backlog <= (MAX_UNHEARD_S + 1.0) * SAMPLE_RATE


async def test_silence_and_noise_end_with_no_utterances(local_stt):
    rng = np.random.default_rng(7)
    for name, audio in {
        "silence": np.zeros(5 * SAMPLE_RATE, np.float32),
        "noise": (rng.standard_normal(5 * SAMPLE_RATE) * 0.01).astype(np.float32),
    }.items():
        run = LocalRun(source=ArraySource(audio, name=name), stt=local_stt, feed=TranscriptFeed())
        assert await run.run() == [], name
        assert run.progress.verdict().state == "done"


async def test_a_truncated_file_delivers_its_intact_part_then_says_where_it_broke(
    tmp_path, local_stt
):
    clip = tmp_path / "cut.wav"
    with wave.open(str(clip), "wb") as w:  # a WAV of the whole 11 s recording...
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(SAMPLE_RATE)
        w.writeframes(samples.load("jfk").tobytes())
    data = clip.read_bytes()
    clip.write_bytes(data[: len(data) * 6 // 10])  # ...cut: the header still promises 11 s

    feed = TranscriptFeed()
    heard: list[Utterance] = []
    feed.subscribe(lambda e: heard.append(e) if isinstance(e, Utterance) and e.final else None)
    run = LocalRun(source=FileSource(clip), stt=local_stt, feed=feed)
    with pytest.raises(AudioSourceError, match="truncated"):
        await run.run()
    text = normalise(" ".join(u.text for u in heard))
    assert "fellow americans" in text and "ask not" in text


class _SilentService:
    """A v3 streaming endpoint that accepts the connection and then never says a word."""

    def __init__(self) -> None:
        self.connections = 0
        self.audio_bytes = 0

    async def handle(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        self.connections += 1
        async for msg in ws:
            if msg.type == web.WSMsgType.BINARY:
                self.audio_bytes += len(msg.data)
        return ws


@pytest.fixture
async def silent_service() -> AsyncIterator[tuple[_SilentService, str]]:
    service = _SilentService()
    app = web.Application()
    app.router.add_get("/v3/ws", service.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    yield service, f"http://127.0.0.1:{port}"
    await runner.cleanup()


async def test_a_service_that_stops_answering_fails_the_run_naming_it(silent_service, jfk):
    service, url = silent_service
    settings = Settings(assemblyai_api_key=Secret("a" * 32), assemblyai_base_url=url)
    stt = make_stt(settings, engine="assemblyai")
    run = LocalRun(source=FileSource(jfk), stt=stt, feed=TranscriptFeed(), stall_s=4.0)
    try:
        with pytest.raises(EngineError) as failure:
            await run.run()
    finally:
        await stt.aclose()
    message = str(failure.value)
    assert message.startswith(f"AssemblyAI at 127.0.0.1:{url.rsplit(':', 1)[1]} stopped answering")
    assert "got no transcript" in message
    assert service.connections >= 1 and service.audio_bytes > 0  # audio did flow
    assert "a" * 32 not in message


async def test_ten_stops_with_slow_handlers_leave_no_task_and_publish_nothing_after(
    jfk, local_stt, monkeypatch
):
    import stt_agent
    import stt_agent.local

    # Each stop lets the still-running handler drain until the deadline, then abandons it:
    # a shorter drain than the kit's 2 s takes the same path (the handler sleeps 60 s, far
    # past either deadline) and spares the ten cycles ~20 s of waiting.
    monkeypatch.setattr(stt_agent.local, "_STOP_DRAIN_S", 0.2)

    async def cycle() -> None:
        feed = TranscriptFeed()
        handle = await stt_agent.start_local(jfk, realtime=False, stt=local_stt, feed=feed)
        handle.handlers.timeout_s = 60
        inside = asyncio.Event()

        @handle.on_turn
        async def slow(u: Utterance) -> None:
            inside.set()
            await asyncio.sleep(60)

        await asyncio.wait_for(inside.wait(), 60)
        await asyncio.wait_for(handle.stop(), 60)
        assert handle.status.state == "stopped"
        after: list[object] = []
        feed.subscribe(after.append)
        for _ in range(50):  # let anything still scheduled run
            await asyncio.sleep(0.01)
        assert after == [], after

    await cycle()  # warm-up: pools created lazily exist from now on
    tasks_before = asyncio.all_tasks()
    for _ in range(10):
        await cycle()
    leftover = [t for t in asyncio.all_tasks() - tasks_before if not t.done()]
    assert not leftover, leftover
