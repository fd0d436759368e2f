"""Helpers for the browser tests of room mode: the teacher's kernel on a thread of its own
(the `kernel` fixture: add "tests.room_browser" to `pytest_plugins`), and a recording as
Chromium's fake microphone plays it."""

from __future__ import annotations

import asyncio
import threading
import wave
from collections.abc import Coroutine, Iterator
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import pytest

from stt_agent import samples

T = TypeVar("T")
RATE = 16_000
START_TIMEOUT_S = 120.0
LEAD_S, TAIL_S = 4.0, 30.0  # silence before (the worker's session starts) and after the speech


class LoopThread:
    """An event loop on its own thread: the teacher's kernel, beside Playwright's sync API."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    def run(self, coro: Coroutine[Any, Any, T], timeout: float = START_TIMEOUT_S) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)


def fake_microphone_wav(folder: Path, clip: str) -> Path:
    """The recording between silences, as Chromium's fake microphone plays it (in a loop)."""
    pcm = samples.load(clip)
    silence = np.zeros(int(LEAD_S * RATE), dtype=pcm.dtype)
    path = folder / f"{clip}.wav"
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(RATE)
        tail = np.zeros(int(TAIL_S * RATE), dtype=pcm.dtype)
        w.writeframes(np.concatenate([silence, pcm, tail]).astype("<i2").tobytes())
    return path


@pytest.fixture
def kernel() -> Iterator[LoopThread]:
    thread = LoopThread()
    yield thread
    thread.close()
