"""One simulated AssemblyAI session: audio in, VAD-driven turns, Turn messages out."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
from aiohttp import WSMsgType, web
from livekit import rtc
from livekit.agents import vad as agents_vad

from .wire import SAMPLE_RATE, formatted, ms, mulaw_to_int16, send_error, turn_words

if TYPE_CHECKING:
    from .server import AssemblyAISimulator

__all__ = ["SessionRecord", "SimulatedSession"]

logger = logging.getLogger("stt_agent.engines.assemblyai_simulator")

# The models for which the real service sends SpeechStarted (mirrors the plugin's _U3_PRO_MODELS).
U3_PRO_MODELS = {
    "u3-rt-pro",
    "u3-rt-pro-beta-1",
    "u3-pro",
    "universal-3-5-pro",
    "universal-3-6-pro",
}
# AssemblyAI's documented (min, max) turn silence in ms, used when the client sends none:
# Universal-3 Pro, and Universal-Streaming (its min is min_end_of_turn_silence_when_confident).
U3_PRO_SILENCE_MS = (100, 1000)
UNIVERSAL_SILENCE_MS = (400, 1280)
SPEECH_ONSET_S = 0.05  # this much VAD-positive audio opens a turn (debounces clicks)
LEAD_IN_S = 0.3  # audio kept before the onset, so the recogniser hears the first phoneme whole
SESSION_LIFETIME_S = 3 * 3600  # the documented maximum session length, reported as expires_at


@dataclass
class SessionRecord:
    """What one accepted connection asked for and got (handy to look at in a notebook)."""

    id: str
    query: dict[str, str]
    headers: dict[str, str]  # Authorization redacted
    audio_bytes: int = 0
    audio_seconds: float = 0.0
    control_messages: list[dict[str, Any]] = field(default_factory=list)
    turns: list[dict[str, Any]] = field(default_factory=list)  # Turn messages as sent
    terminated: bool = False  # the client sent Terminate and was sent Termination
    dropped: bool = False  # cut off without a Termination (only tests do that)
    close_code: int | None = None


@dataclass
class _Job:
    kind: Literal["speech_started", "partial", "final"]
    start: int  # 16 kHz sample index into the session's audio
    end: int
    confidence: float  # of the speech onset, or end_of_turn_confidence


class SimulatedSession:
    """One websocket connection: audio in, VAD-driven turns, transcripts out."""

    def __init__(
        self,
        server: AssemblyAISimulator,
        request: web.Request,
        ws: web.WebSocketResponse,
        record: SessionRecord,
    ) -> None:
        self.server, self.request, self.ws, self.record = server, request, ws, record
        self.aborted = False  # the TCP connection was cut: there is no one to close to
        self._config: dict[str, Any] = dict(request.query)  # UpdateConfiguration overrides it
        self._rate = int(request.query["sample_rate"])
        self._mulaw = request.query.get("encoding") == "pcm_mulaw"
        self._resampler = (
            rtc.AudioResampler(self._rate, SAMPLE_RATE, quality=rtc.AudioResamplerQuality.HIGH)
            if self._rate != SAMPLE_RATE
            else None
        )
        self._carry = b""  # an odd trailing byte of s16 audio, completed by the next frame
        self._samples_in = 0  # at the client's rate, for audio_duration_seconds
        self._pcm = bytearray()  # everything received, int16 at 16 kHz
        self._vad_stream = server.vad_stream()
        self._jobs: asyncio.Queue[_Job | None] = asyncio.Queue()
        self._turn_start: int | None = None  # sample index, while a turn is open
        self._turn_floor = 0  # a new turn may not reach back before the previous one's end
        self._last_partial_at = 0
        self._partial_queued = False  # at most one partial waits for the recogniser
        self._pause_partial_sent = False
        self._opened = time.monotonic()

    async def run(self) -> None:
        expires_at = int(time.time()) + SESSION_LIFETIME_S
        await self._send({"type": "Begin", "id": self.record.id, "expires_at": expires_at})
        vad_task = asyncio.create_task(self._watch_vad())
        asr_task = asyncio.create_task(self._asr_worker())
        try:
            async for msg in self.ws:
                if msg.type == WSMsgType.BINARY:
                    self._on_audio(msg.data)
                    if not await self.server._after_audio(self):
                        break
                elif msg.type == WSMsgType.TEXT and not await self._on_control(
                    msg.data, vad_task, asr_task
                ):
                    break
        finally:
            for task in (vad_task, asr_task):
                task.cancel()
            await asyncio.gather(vad_task, asr_task, return_exceptions=True)
            await self._vad_stream.aclose()
            if not self.aborted and not self.ws.closed:
                await self.close(1000)  # the client went away without Terminate
            elif self.record.close_code is None and not self.aborted:
                self.record.close_code = self.ws.close_code  # the client closed first

    async def close(self, code: int) -> None:
        if not self.ws.closed:
            self.record.close_code = code
            await self.ws.close(code=code)

    async def error(self, code: int, message: str) -> None:
        if not self.ws.closed:
            self.record.close_code = code  # first: the await below may be cancelled by teardown
            await send_error(self.ws, code, message)

    # ---- client → server ----------------------------------------------------------------

    def _on_audio(self, data: bytes) -> None:
        self.record.audio_bytes += len(data)
        if self._mulaw:
            samples = mulaw_to_int16(data)
        else:
            data, self._carry = self._carry + data, b""
            if len(data) % 2:
                data, self._carry = data[:-1], data[-1:]
            samples = np.frombuffer(data, dtype="<i2")
        self._samples_in += len(samples)
        self.record.audio_seconds = self._samples_in / self._rate
        frame = rtc.AudioFrame(samples.astype(np.int16).tobytes(), self._rate, 1, len(samples))
        self._push(self._resampler.push(frame) if self._resampler else [frame])

    def _push(self, frames: list[rtc.AudioFrame]) -> None:
        for frame in frames:
            self._pcm += bytes(frame.data)
            self._vad_stream.push_frame(frame)

    async def _on_control(
        self, text: str, vad_task: asyncio.Task[None], asr_task: asyncio.Task[None]
    ) -> bool:
        """Handle a JSON message; False when the session is over."""
        try:
            msg = json.loads(text)
            kind = msg["type"]
        except (ValueError, TypeError, KeyError):
            await self.error(3006, f"Invalid Message: {text[:64]}")
            return False
        self.record.control_messages.append(msg)
        if kind == "Terminate":
            await self._terminate(vad_task, asr_task)
            return False
        if kind == "ForceEndpoint":
            if self._turn_start is not None:
                # Everything received so far belongs to this turn, even what the VAD has not seen.
                self._end_turn(len(self._pcm) // 2, 1.0)
        elif kind == "UpdateConfiguration":
            self._config.update({k: v for k, v in msg.items() if k != "type"})
        elif kind != "KeepAlive":
            await self.error(3006, f"Invalid Message Type: {kind}")
            return False
        return True

    async def _terminate(self, vad_task: asyncio.Task[None], asr_task: asyncio.Task[None]) -> None:
        """Finish the in-flight turn, then Termination and a normal close, as the service does."""
        if self._resampler is not None:
            self._push(self._resampler.flush())
        self._vad_stream.end_input()
        await vad_task  # let the VAD catch up with all the audio received
        if self._turn_start is not None:
            self._end_turn(len(self._pcm) // 2, 1.0)
        self._jobs.put_nowait(None)
        await asr_task
        await self._send(
            {
                "type": "Termination",
                "audio_duration_seconds": round(self.record.audio_seconds),
                "session_duration_seconds": round(time.monotonic() - self._opened),
            }
        )
        self.record.terminated = True
        await self.close(1000)

    # ---- turn detection -----------------------------------------------------------------

    async def _watch_vad(self) -> None:
        """Open a turn on speech; partial every partial_interval of audio and once per pause of
        min_turn_silence; end the turn after max_turn_silence. There is no semantic end-of-turn
        model here, so a pause shorter than max_turn_silence never ends a turn."""
        interval = int(self.server.partial_interval * SAMPLE_RATE)
        async for ev in self._vad_stream:
            if ev.type != agents_vad.VADEventType.INFERENCE_DONE:
                continue
            pos = ev.samples_index  # 16 kHz samples the VAD has consumed, i.e. an index into _pcm
            if self._turn_start is None:
                if ev.raw_accumulated_speech >= SPEECH_ONSET_S:
                    onset = max(pos - int(ev.raw_accumulated_speech * SAMPLE_RATE), 0)
                    self._turn_start = max(onset - int(LEAD_IN_S * SAMPLE_RATE), self._turn_floor)
                    self._last_partial_at = pos
                    if self._config.get("speech_model") in U3_PRO_MODELS:
                        # Queued, so it cannot overtake the previous turn's last messages.
                        self._jobs.put_nowait(_Job("speech_started", onset, onset, ev.probability))
                continue
            silence_ms = ev.raw_accumulated_silence * 1000
            min_ms, max_ms = self._turn_silence_ms()
            confidence = min(silence_ms / max_ms, 1.0) if max_ms else 1.0
            if silence_ms >= max_ms:
                self._end_turn(pos, 1.0)
            elif silence_ms >= min_ms and not self._pause_partial_sent:
                self._pause_partial_sent = True
                self._request_partial(pos, confidence)
            elif pos - self._last_partial_at >= interval:
                self._request_partial(pos, confidence)
            if silence_ms == 0:
                self._pause_partial_sent = False

    def _turn_silence_ms(self) -> tuple[float, float]:
        u3 = self._config.get("speech_model") in U3_PRO_MODELS
        default_min, default_max = U3_PRO_SILENCE_MS if u3 else UNIVERSAL_SILENCE_MS
        min_ms = self._config.get(
            "min_turn_silence", self._config.get("min_end_of_turn_silence_when_confident")
        )  # the second is the deprecated name
        max_ms = self._config.get("max_turn_silence")
        return (
            default_min if min_ms is None else float(min_ms),
            default_max if max_ms is None else float(max_ms),
        )

    def _request_partial(self, end: int, confidence: float) -> None:
        if self._partial_queued or self._turn_start is None:
            return  # the recogniser is behind: skip rather than queue stale partials
        self._partial_queued = True
        self._last_partial_at = end
        self._jobs.put_nowait(_Job("partial", self._turn_start, end, confidence))

    def _end_turn(self, end: int, confidence: float) -> None:
        assert self._turn_start is not None
        self._jobs.put_nowait(_Job("final", self._turn_start, end, confidence))
        self._turn_start, self._turn_floor = None, end
        self._pause_partial_sent = False

    # ---- transcription ------------------------------------------------------------------

    async def _asr_worker(self) -> None:
        """Run jobs in order, so a turn's partials always precede its end-of-turn message."""
        turn_order, turn_started = 0, False
        while (job := await self._jobs.get()) is not None:
            if job.kind == "speech_started":
                confidence = round(float(job.confidence), 3)
                await self._send(
                    {"type": "SpeechStarted", "timestamp": ms(job.start), "confidence": confidence}
                )
                continue
            final = job.kind == "final"
            pcm = np.frombuffer(bytes(self._pcm[job.start * 2 : job.end * 2]), dtype=np.int16)
            audio = pcm.astype(np.float32) / 32768.0
            try:
                raw = await self.server.recognise(audio)
            except Exception:
                # What the service does on an internal error; the details go to the log.
                logger.exception("the simulator's recogniser failed")
                await self.error(3005, "Session Cancelled: An error occurred")
                return
            if not final:
                self._partial_queued = False
            words = turn_words(raw, job.start, len(audio) / SAMPLE_RATE, final)
            if not words and (not final or not turn_started):
                continue  # noise, not speech: the service sends nothing for it
            turn = {
                "type": "Turn",
                "turn_order": turn_order,
                "turn_is_formatted": False,
                "end_of_turn": final,
                # Like the service: the finalised words only; `words` also has the tentative ones.
                "transcript": " ".join(w["text"] for w in words if w["word_is_final"]),
                "end_of_turn_confidence": round(job.confidence, 3),
                "words": [{k: v for k, v in w.items() if k != "formatted"} for w in words],
                "utterance": "",  # utterance boundaries (the plugin's preflight) are not modelled
            }
            await self._send(turn)
            turn_started = True
            if not final:
                continue
            if str(self._config.get("format_turns", "false")).lower() == "true":
                formatted_words = [{**w, "text": w["formatted"]} for w in words]
                for w in formatted_words:
                    del w["formatted"]
                await self._send(
                    {
                        **turn,
                        "turn_is_formatted": True,
                        "transcript": formatted(w["text"] for w in formatted_words),
                        "words": formatted_words,
                    }
                )
            turn_order, turn_started = turn_order + 1, False

    async def _send(self, msg: dict[str, Any]) -> None:
        if msg["type"] == "Turn":
            rewritten = self.server._outgoing_turn(self, msg)
            if rewritten is None:
                return
            msg = rewritten
        if self.ws.closed:
            return
        try:
            await self.ws.send_json(msg)
        except ConnectionError:
            return
        if msg["type"] == "Turn":
            self.record.turns.append(msg)
