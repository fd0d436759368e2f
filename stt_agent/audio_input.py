"""The session's audio input: an `AudioSource` fed to `AgentSession`, at the recogniser's pace.

`AgentSession.input.audio` is LiveKit's extension point for where a session hears from; this
one reads a source (`stt_agent.audio`) and shares the run's `RunProgress` with the recogniser.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from livekit import rtc
from livekit.agents.voice import io

from .audio import FRAME_SAMPLES, SAMPLE_RATE, AudioSource
from .pacing import Pacer
from .progress import RunProgress

__all__ = ["MAX_TAIL_S", "SERVICE_TAIL_MIN_S", "SourceAudioInput"]

# After the source: at most this much more silence while the recogniser closes the last turn,
# and at least this much for a streaming service, whose turn silence is its own (seconds).
MAX_TAIL_S = 30.0
SERVICE_TAIL_MIN_S = 1.5


class SourceAudioInput(io.AudioInput):
    """LiveKit's own extension point for session audio, fed from an `AudioSource`.

    It is the source's side of the run's `RunProgress`: it counts what it hands over, waits
    when the recogniser is behind (backpressure), and after the source's last frame keeps
    "listening" to silence until the recogniser has answered all the speech it was given, as
    a microphone left open would. When that is over, iteration ends and `progress.source_done`
    is set; a source that fails is remembered in `error`, after its intact part went through.
    """

    def __init__(self, source: AudioSource, progress: RunProgress) -> None:
        super().__init__(label=f"stt_agent:{source.name}")
        self.source_ = source
        self.progress = progress
        self.error: BaseException | None = None
        self._stop = asyncio.Event()
        self._frames = self._run()

    def stop(self) -> None:
        """Hand over nothing more (a stop request): the current frame is the last."""
        self._stop.set()
        self.progress.touch()

    async def __anext__(self) -> rtc.AudioFrame:
        return await self._frames.__anext__()

    async def _run(self) -> AsyncIterator[rtc.AudioFrame]:
        progress = self.progress
        try:
            async for frame in self.source_.frames():
                while not progress.wants_more_audio() and not self._stop.is_set():
                    await progress.changed(timeout=1.0)
                if self._stop.is_set():
                    return
                progress.fed += frame.samples_per_channel
                progress.peak_backlog = max(progress.peak_backlog, progress.fed - progress.heard)
                progress.touch()
                yield frame
        except asyncio.CancelledError:
            raise
        except Exception as e:
            # Not raised here: the audio before the break is still recognised, then the run
            # reports the error.
            self.error = e
        if not self._stop.is_set():
            async for frame in self._listening_tail():
                progress.fed += frame.samples_per_channel
                progress.touch()
                yield frame
        progress.source_done = True
        progress.touch()

    async def _listening_tail(self) -> AsyncIterator[rtc.AudioFrame]:
        """Silence until the recogniser has closed the last utterance (bounded in audio)."""
        progress = self.progress
        fed = 0
        pacer = Pacer()
        while fed < MAX_TAIL_S * SAMPLE_RATE and not self._stop.is_set():
            if progress.exact:
                # Let the VAD catch up with what it has, then see whether speech is still open.
                while progress.heard < progress.fed - FRAME_SAMPLES * 2 and not (
                    self._stop.is_set() or progress.verdict().state == "stalled"
                ):
                    await progress.changed(timeout=1.0)
                if not progress.speech_open:
                    return
            elif (
                fed >= SERVICE_TAIL_MIN_S * SAMPLE_RATE
                # our VAD has listened to everything sent, so it knows what is owed
                and progress.heard >= progress.at_stt - 2 * FRAME_SAMPLES
                and not (progress.owes_answer or progress.turns_open)
            ):
                return
            else:
                # A streaming service hears audio at the speed it is spoken.
                await pacer.wait(fed / SAMPLE_RATE)
            fed += FRAME_SAMPLES
            yield rtc.AudioFrame.create(SAMPLE_RATE, 1, FRAME_SAMPLES)
