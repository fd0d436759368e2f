"""MicWidget's kernel side without a browser: the custom messages and state changes a browser
sends are played to the widget directly, the way ipywidgets delivers them."""

from __future__ import annotations

import asyncio
import threading
import time

import numpy as np
import pytest

import stt_agent
from stt_agent.audio import SAMPLE_RATE, AudioSource, FileSource, as_source
from stt_agent.ui.mic import MicrophoneError, MicWidget

FRAME = 320  # 20 ms at 16 kHz


def _audio(mic: MicWidget, *chunks: np.ndarray) -> None:
    """What a browser's `model.send({type: "audio"}, undefined, [buffer])` arrives as."""
    for chunk in chunks:
        mic._handle_custom_msg({"type": "audio"}, [memoryview(chunk.astype("<i2").tobytes())])


def _from_browser(mic: MicWidget, **state: object) -> None:
    """A trait update from the browser (`model.set(...); model.save_changes()`)."""
    mic.set_state(state)


def _pcm(frames: list) -> np.ndarray:
    return np.concatenate([np.frombuffer(f.data, dtype=np.int16) for f in frames])


async def _collect(mic: MicWidget, timeout: float = 5.0) -> list:
    async def run() -> list:
        return [frame async for frame in mic.frames()]

    return await asyncio.wait_for(run(), timeout)


def test_is_an_audio_source():
    mic = MicWidget()
    assert isinstance(mic, AudioSource)
    assert as_source(mic) is mic
    assert mic.name == "microphone"
    assert mic.state == "idle" and not mic.autostart
    assert MicWidget(autostart=True).autostart
    assert mic._esm.lstrip().startswith("//")  # mic.js itself, loaded by anywidget


async def test_odd_chunks_become_exact_20ms_frames():
    mic = MicWidget()
    rng = np.random.default_rng(7)
    sizes = [1, 319, 321, 777, 1600, 13, 3, 2048]
    chunks = [rng.integers(-32768, 32767, n, dtype=np.int16) for n in sizes]
    _from_browser(mic, state="recording")
    _audio(mic, *chunks)
    _from_browser(mic, state="stopped")  # the user pressed Stop
    frames = await _collect(mic)

    assert all(
        f.samples_per_channel == FRAME and f.sample_rate == SAMPLE_RATE and f.num_channels == 1
        for f in frames
    )
    sent = np.concatenate(chunks)
    out = _pcm(frames)
    assert np.array_equal(out[: sent.size], sent)  # same samples, same order
    tail = out[sent.size :]
    assert not tail.any() and tail.size >= mic.trailing_silence_s * SAMPLE_RATE  # then silence
    assert out.size % FRAME == 0
    assert mic.samples_received == sent.size
    assert mic.samples_sent == out.size


async def test_frames_flow_while_recording_and_stop_ends_them():
    mic = MicWidget(trailing_silence_s=0)
    _from_browser(mic, state="recording")
    got: list = []
    first = asyncio.Event()

    async def read() -> None:
        async for frame in mic.frames():
            got.append(frame)
            first.set()

    reader = asyncio.create_task(read())
    _audio(mic, np.arange(1600, dtype=np.int16))
    await asyncio.wait_for(first.wait(), 2)  # live: no waiting for the end of the recording
    assert not reader.done()
    _audio(mic, np.arange(100, dtype=np.int16))
    commands: list = []
    mic.send = lambda content, buffers=None: commands.append(content)  # type: ignore[method-assign]
    mic.stop()
    await asyncio.wait_for(reader, 2)
    assert commands == [{"type": "stop"}]  # the browser is told to let go of the microphone
    assert mic.state == "stopped"
    assert _pcm(got).size == 1600 + 320  # 100 leftover samples padded to a whole frame


async def test_chunks_from_another_thread_reach_the_loop():
    mic = MicWidget(trailing_silence_s=0)
    _from_browser(mic, state="recording")
    reader = asyncio.create_task(_collect(mic))
    await asyncio.sleep(0)
    sent = np.arange(3200, dtype=np.int16)
    thread = threading.Thread(target=_audio, args=(mic, sent[:1000], sent[1000:]))
    thread.start()
    thread.join()
    await asyncio.sleep(0.05)
    threading.Thread(target=mic.stop).start()
    assert np.array_equal(_pcm(await reader), sent)


@pytest.mark.parametrize(
    ("state", "says"),
    [
        ("denied", "denied access"),
        ("no-device", "no microphone"),
        ("insecure", "not a secure context"),
        ("error", "NotReadableError: busy"),
    ],
)
async def test_browser_failures_end_frames_with_a_clear_error(state, says):
    mic = MicWidget()
    _from_browser(mic, state="requesting")
    reader = asyncio.create_task(_collect(mic))
    await asyncio.sleep(0.01)
    _from_browser(mic, state=state, message="NotReadableError: busy")
    with pytest.raises(MicrophoneError, match=says) as caught:
        await reader
    assert caught.value.state == state
    assert str(caught.value).startswith("microphone: ")
    # Reading again while the browser is still in that state fails at once, not never.
    with pytest.raises(MicrophoneError, match=says):
        await _collect(mic, timeout=1)


async def test_start_local_reports_a_denied_microphone(local_stt):
    mic = MicWidget()
    _from_browser(mic, state="denied", message="Microphone access was denied.")
    handle = await stt_agent.start_local(mic, stt=local_stt)
    await asyncio.wait_for(handle.done(), 30)
    assert handle.status.state == "error"
    assert "MicrophoneError" in handle.status.error and "denied" in handle.status.error
    await handle.stop()


async def test_audio_before_a_reader_is_kept_but_bounded():
    mic = MicWidget(max_backlog_s=1.0, trailing_silence_s=0)
    _from_browser(mic, state="recording")
    sent = np.arange(3 * SAMPLE_RATE, dtype=np.int64).astype(np.int16)
    _audio(mic, *np.split(sent, 30))
    mic.stop()
    out = _pcm(await _collect(mic))
    assert np.array_equal(out, sent[-SAMPLE_RATE:])  # the newest second


async def test_a_new_recording_drops_what_an_unread_one_left():
    mic = MicWidget(trailing_silence_s=0)
    _from_browser(mic, state="recording")
    _audio(mic, np.full(640, 1, np.int16))
    _from_browser(mic, state="stopped")
    _from_browser(mic, state="recording")  # Start pressed again before anyone read it
    _audio(mic, np.full(640, 2, np.int16))
    _from_browser(mic, state="stopped")
    assert set(_pcm(await _collect(mic)).tolist()) == {2}


async def test_a_second_reader_takes_over():
    mic = MicWidget(trailing_silence_s=0)
    _from_browser(mic, state="recording")
    first = asyncio.create_task(_collect(mic))
    await asyncio.sleep(0.01)
    second = asyncio.create_task(_collect(mic))
    await asyncio.wait_for(first, 2)  # ended, not left waiting forever
    _audio(mic, np.full(320, 5, np.int16))
    mic.stop()
    assert _pcm(await second).tolist() == [5] * 320


def test_other_custom_messages_still_reach_on_msg_callbacks():
    mic = MicWidget()
    seen: list = []
    mic.on_msg(lambda widget, content, buffers: seen.append(content))
    mic._handle_custom_msg({"type": "hello"}, [])
    assert seen == [{"type": "hello"}]
    assert mic.samples_received == 0


async def test_wall_time_maps_audio_time_to_arrival():
    mic = MicWidget(trailing_silence_s=0)
    _from_browser(mic, state="recording")
    before = time.time()
    _audio(mic, np.zeros(1600, np.int16))
    mic.stop()
    await _collect(mic)
    t = mic.wall_time_of(0.1)  # the last sample of the chunk: when that chunk arrived
    assert t is not None and before <= t <= time.time()
    assert mic.wall_time_of(0.0) == pytest.approx(t - 0.1)
    assert mic.wall_time_of(5.0) is None


async def test_start_local_transcribes_what_the_microphone_sends(jfk, local_stt):
    """A recording sent the way the browser sends it: ~100 ms chunks while the session runs."""
    pcm = np.concatenate(
        [
            np.frombuffer(f.data, dtype=np.int16)
            async for f in FileSource(jfk, trailing_silence_s=0).frames()
        ]
    )
    mic = MicWidget()
    _from_browser(mic, state="requesting")
    handle = await stt_agent.start_local(mic, stt=local_stt)
    await handle.wait_ready(timeout=30)
    _from_browser(mic, state="recording", context_rate=16_000)
    for i in range(0, pcm.size, 1600):
        _audio(mic, pcm[i : i + 1600])
        await asyncio.sleep(0.005)  # faster than real time, still interleaved with the session
    _from_browser(mic, state="stopped")
    result = await asyncio.wait_for(handle.done(), 60)
    text = " ".join(u.text for u in result).lower()
    assert "fellow americans" in text
    assert "ask not" in text
    assert handle.status.state == "finished"
    assert mic.samples_received == pcm.size
    await handle.stop()
