"""MicWidget: the browser's microphone as an audio source for local mode.

The browser half (mic.js) asks for the microphone, converts it to 16 kHz mono 16-bit PCM in an
AudioWorklet and sends ~100 ms binary chunks over the widget's comm. This half queues them on the
kernel's loop and cuts them into the 20 ms frames `AgentSession` reads, so the widget is an
`AudioSource` like a file::

    mic = MicWidget(autostart=True); mic
    handle = await stt_agent.start_local(mic)

The kernel handles the widget's messages while a cell awaits, but not while one computes
without awaiting: a long synchronous cell holds the audio (and the Stop button) until it ends.
"""

from __future__ import annotations

import asyncio
import bisect
import pathlib
import threading
import time
import uuid
from collections import deque
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import anywidget
import numpy as np
import traitlets
from livekit import rtc

from ..audio import DEFAULT_TRAILING_SILENCE_S, FRAME_SAMPLES, SAMPLE_RATE, to_frames
from ..errors import AudioSourceError
from ..pacing import with_trailing_silence

__all__ = ["MicWidget", "MicrophoneError"]

STATES = ("idle", "requesting", "recording", "stopped", "denied", "no-device", "insecure", "error")
_FAILED = frozenset({"denied", "no-device", "insecure", "error"})
_PROBLEMS = {
    "denied": "the browser denied access to the microphone; allow it for this site and press Start",
    "no-device": "the browser found no microphone; connect one and press Start",
    "insecure": (
        "the page is not a secure context, so the browser offers no microphone; open JupyterLab "
        "over https or at http://localhost"
    ),
    "error": "the browser could not record",
}


class MicrophoneError(AudioSourceError):
    """The browser could not record: access denied, no device, insecure page, or another error."""

    def __init__(self, state: str, detail: str = "") -> None:
        problem = _PROBLEMS.get(state, state)
        if detail and state == "error":
            problem = f"{problem}: {detail}"
        super().__init__("microphone", problem)
        self.state = state


@dataclass(frozen=True)
class _End:
    """Marks the end of a recording in the chunk stream; carries the reason when it failed."""

    error: MicrophoneError | None = None


_Chunk = tuple[np.ndarray, float]  # int16 samples, wall time they arrived


class MicWidget(anywidget.AnyWidget):
    """Start/stop button and level meter; an `AudioSource` of 16 kHz mono 20 ms frames.

    `frames()` yields what the browser records until the user presses Stop, `stop()` or `close()`
    is called, or a new reader takes over; it raises `MicrophoneError` when the browser cannot
    record. Audio recorded before anyone reads it is kept (the last `max_backlog_s` seconds).
    """

    _esm = pathlib.Path(__file__).with_name("mic.js")
    _css = """
    .stt-mic { display: flex; flex-wrap: wrap; align-items: center; gap: 8px;
      font-family: var(--jp-ui-font-family, sans-serif); font-size: 13px; }
    .stt-mic-button { min-width: 80px; }
    .stt-mic-meter { width: 160px; height: 10px; border-radius: 5px; overflow: hidden;
      background: var(--jp-layout-color3, #ddd); }
    .stt-mic-level { height: 100%; width: 0; background: #1a7f37; transition: width 80ms linear; }
    .stt-mic-state { color: #57606a; }
    .stt-mic[data-state="recording"] .stt-mic-state { color: #cf222e; font-weight: 600; }
    .stt-mic[data-state="denied"] .stt-mic-message,
    .stt-mic[data-state="no-device"] .stt-mic-message,
    .stt-mic[data-state="insecure"] .stt-mic-message,
    .stt-mic[data-state="error"] .stt-mic-message { color: #cf222e; }
    .stt-mic-message { flex-basis: 100%; color: #57606a; }
    .stt-mic-message:empty { display: none; }
    """

    state = traitlets.Enum(STATES, default_value="idle").tag(sync=True)
    message = traitlets.Unicode("").tag(sync=True)
    level = traitlets.Float(0.0).tag(sync=True)  # 0..1, from the browser's meter
    autostart = traitlets.Bool(False).tag(sync=True)
    chunk_ms = traitlets.Int(100).tag(sync=True)
    # Browser echo cancellation, noise suppression and gain control; off by default because
    # speech models do better on the raw signal. Turn on when speakers play into the mic.
    audio_processing = traitlets.Bool(False).tag(sync=True)
    # The AudioContext rate to ask for (0: the device's own); either way 16 kHz is sent.
    capture_rate = traitlets.Int(SAMPLE_RATE).tag(sync=True)
    context_rate = traitlets.Int(0).tag(sync=True)  # the AudioContext's actual rate
    # Identifies this widget in the browser, where every view gets its own proxy of the model.
    _instance = traitlets.Unicode().tag(sync=True)

    name = "microphone"

    def __init__(
        self,
        autostart: bool = False,
        *,
        max_backlog_s: float = 10.0,
        trailing_silence_s: float = DEFAULT_TRAILING_SILENCE_S,
        **kwargs: Any,
    ) -> None:
        self._lock = threading.RLock()
        self._backlog: deque[_Chunk | _End] = deque()
        self._backlog_samples = 0
        self._reader: asyncio.Queue[_Chunk | _End] | None = None
        self._reader_loop: asyncio.AbstractEventLoop | None = None
        self._quiet_stop = False
        self._clock: list[tuple[int, float]] = []  # (stream samples so far, arrival time)
        self.max_backlog_s = max_backlog_s
        self.trailing_silence_s = trailing_silence_s
        self.samples_received = 0  # every sample the browser sent
        self.samples_sent = 0  # samples handed on by the current `frames()`, silence included
        self.first_frame_at: float | None = None
        super().__init__(autostart=autostart, **kwargs)

    @traitlets.default("_instance")
    def _new_instance_id(self) -> str:
        return uuid.uuid4().hex

    # --- browser -> kernel ---------------------------------------------------------------

    def _handle_custom_msg(self, content: Any, buffers: list[Any]) -> None:
        # Runs wherever the kernel handles comm messages (its main thread).
        if not (isinstance(content, dict) and content.get("type") == "audio"):
            super()._handle_custom_msg(content, buffers)
            return
        arrived = time.time()
        for buffer in buffers or ():
            raw = memoryview(buffer).cast("B")
            pcm = np.frombuffer(raw[: len(raw) // 2 * 2], dtype="<i2").astype(np.int16)
            if pcm.size:
                self.samples_received += pcm.size
                self._push((pcm, arrived))

    @traitlets.observe("state")
    def _on_state(self, change: dict[str, Any]) -> None:
        new = change["new"]
        if new == "recording":
            with self._lock:
                if self._reader is None:
                    # A fresh recording: what an earlier one left unread is stale.
                    self._backlog.clear()
                    self._backlog_samples = 0
        elif new == "stopped" and not self._quiet_stop:
            self._push(_End())
        elif new in _FAILED:
            self._push(_End(MicrophoneError(new, self.message)))

    # --- kernel -> browser ---------------------------------------------------------------

    def start(self) -> None:
        """Ask the browser to start recording (needs the widget shown in a notebook)."""
        self.send({"type": "start"})

    def stop(self) -> None:
        """End `frames()` after what has arrived, and release the microphone in the browser."""
        self._push(_End())
        if self.state in ("recording", "requesting"):
            self._quiet_stop = True  # the end is already queued
            try:
                self.state = "stopped"
            finally:
                self._quiet_stop = False
        self.send({"type": "stop"})

    def close(self) -> None:
        if self.comm is not None:
            self.stop()
        super().close()

    # --- the AudioSource side -------------------------------------------------------------

    @property
    def recording(self) -> bool:
        return self.state == "recording"

    async def frames(self) -> AsyncIterator[rtc.AudioFrame]:
        """20 ms 16 kHz mono frames of what the browser records, until the recording ends."""
        queue: asyncio.Queue[_Chunk | _End] = asyncio.Queue()
        with self._lock:
            if self._reader is not None:
                self._hand_to(self._reader, self._reader_loop, _End())  # newest reader wins
            pending = list(self._backlog)
            self._backlog.clear()
            self._backlog_samples = 0
            if self.state in _FAILED and not any(isinstance(i, tuple) for i in pending):
                raise MicrophoneError(self.state, self.message)
            for item in pending:
                queue.put_nowait(item)
            self._reader, self._reader_loop = queue, asyncio.get_running_loop()
        self.samples_sent = 0
        self.first_frame_at = None
        self._clock = []
        received = 0

        async def recorded() -> AsyncIterator[np.ndarray]:
            nonlocal received
            while True:
                item = await queue.get()
                if isinstance(item, _End):
                    if item.error is not None:
                        raise item.error
                    return
                pcm, arrived = item
                received += pcm.size
                self._clock.append((received, arrived))
                yield pcm

        carry = np.zeros(0, dtype=np.int16)
        # Silence after the last word, so the VAD closes the last utterance.
        chunks = with_trailing_silence(
            recorded(),
            self.trailing_silence_s,
            sample_rate=SAMPLE_RATE,
            frame_samples=FRAME_SAMPLES,
        )
        try:
            async for chunk in chunks:
                frames, carry = to_frames(chunk, carry)
                for frame in frames:
                    if self.first_frame_at is None and self.samples_sent < received:
                        self.first_frame_at = time.time()
                    self.samples_sent += frame.samples_per_channel
                    yield frame
        finally:
            with self._lock:
                if self._reader is queue:
                    self._reader = self._reader_loop = None
                    # Whatever came after the end belongs to the next reader.
                    while not queue.empty():
                        self._keep(queue.get_nowait())

    def wall_time_of(self, audio_s: float) -> float | None:
        """Wall-clock time the sample at `audio_s` (of the current stream) reached the kernel."""
        sample = int(audio_s * SAMPLE_RATE)
        if not self._clock:
            return None
        i = bisect.bisect_left(self._clock, (sample, float("-inf")))
        if i == len(self._clock):
            return None
        received, arrived = self._clock[i]
        return arrived - (received - sample) / SAMPLE_RATE

    # --- plumbing -------------------------------------------------------------------------

    def _push(self, item: _Chunk | _End) -> None:
        with self._lock:
            queue, loop = self._reader, self._reader_loop
            if queue is None or loop is None or loop.is_closed():
                self._reader = self._reader_loop = None
                self._keep(item)
                return
        self._hand_to(queue, loop, item)

    def _hand_to(
        self,
        queue: asyncio.Queue[_Chunk | _End],
        loop: asyncio.AbstractEventLoop | None,
        item: _Chunk | _End,
    ) -> None:
        # The reader's loop may run on another thread than the comm handler: always hop.
        try:
            assert loop is not None
            loop.call_soon_threadsafe(self._put, queue, item)
        except (AssertionError, RuntimeError):  # that loop is gone
            with self._lock:
                self._keep(item)

    def _put(self, queue: asyncio.Queue[_Chunk | _End], item: _Chunk | _End) -> None:
        if self._reader is queue or isinstance(item, _End):
            queue.put_nowait(item)
        else:
            self._push(item)  # the reader left meanwhile: keep it for the next one

    def _keep(self, item: _Chunk | _End) -> None:
        """Backlog for a reader not there yet; bounded, oldest audio dropped first."""
        self._backlog.append(item)
        if isinstance(item, tuple):
            self._backlog_samples += item[0].size
        limit = int(self.max_backlog_s * SAMPLE_RATE)
        while self._backlog_samples > limit and self._backlog:
            old = self._backlog.popleft()
            if isinstance(old, tuple):
                self._backlog_samples -= old[0].size

    def __repr__(self) -> str:
        return (
            f"MicWidget(state={self.state!r}, received={self.samples_received / SAMPLE_RATE:.1f} s)"
        )
