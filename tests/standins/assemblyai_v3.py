"""A stand-in for AssemblyAI's v3 streaming speech-to-text API, for tests only.

It speaks the wire protocol that livekit-plugins-assemblyai 1.8.9 uses (and that AssemblyAI
documents in "Message Sequence" and "Common session errors and closures"):

* ``GET /v3/ws?sample_rate=…&encoding=pcm_s16le&speech_model=…&…`` upgraded to a websocket,
  with the raw API key (no "Bearer") in the ``Authorization`` header.
* client → server: binary audio frames, plus JSON ``UpdateConfiguration``, ``ForceEndpoint``,
  ``KeepAlive`` and ``Terminate`` text frames.
* server → client: ``Begin`` {id, expires_at}; ``SpeechStarted`` {timestamp, confidence} (the
  Universal-3 Pro models only); ``Turn`` {turn_order, turn_is_formatted, end_of_turn, transcript,
  end_of_turn_confidence, words, utterance} — partials, then the end-of-turn one, then a formatted
  copy when ``format_turns=true``; ``Termination`` {audio_duration_seconds,
  session_duration_seconds} after ``Terminate``, then close 1000. Failures are an ``Error``
  {error_code, error} frame followed by a close with that same code (3006 bad input, 1008 auth).

Nothing is scripted: Silero VAD segments the audio actually received into turns, and the injected
``transcribe`` callable (e.g. a local Whisper) turns each stretch of audio into words.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import time
import uuid
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
from aiohttp import WSMsgType, web
from livekit import rtc
from livekit.agents import vad as agents_vad
from livekit.plugins import silero

# (text, start s, end s[, confidence]), times relative to the start of the array passed in.
Word = tuple[str, float, float] | tuple[str, float, float, float]
# Float32 mono samples at 16 kHz in, words out. Called on a worker thread, one call at a time.
TranscribeFn = Callable[[np.ndarray], Sequence[Word]]

logger = logging.getLogger(__name__)

SAMPLE_RATE = 16_000  # the rate the VAD and the transcribe callable work at
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
STABLE_TAIL_S = 0.4  # in a partial, words ending this close to the live edge are not final yet
SESSION_LIFETIME_S = 3 * 3600  # the documented maximum session length, reported as expires_at


@dataclass
class SessionRecord:
    """What one accepted connection asked for and got, for tests to assert on."""

    id: str
    query: dict[str, str]
    headers: dict[str, str]  # Authorization redacted
    audio_bytes: int = 0
    audio_seconds: float = 0.0
    control_messages: list[dict[str, Any]] = field(default_factory=list)
    turns: list[dict[str, Any]] = field(default_factory=list)  # Turn messages as sent
    terminated: bool = False  # the client sent Terminate and was sent Termination
    dropped: bool = False  # cut off by drop_next_session_after
    close_code: int | None = None


@dataclass
class _Job:
    kind: Literal["speech_started", "partial", "final"]
    start: int  # 16 kHz sample index into the session's audio
    end: int
    confidence: float  # of the speech onset, or end_of_turn_confidence


class AssemblyAIStandIn:
    """The server: accepts ``/v3/ws`` sessions on a free local port while the context is open."""

    def __init__(
        self,
        *,
        transcribe: TranscribeFn,
        api_key: str = "test-key",
        host: str = "127.0.0.1",
        bad_key_response: Literal["http_401", "close_1008"] = "http_401",
        partial_interval: float = 0.6,
    ) -> None:
        """``bad_key_response``: refuse the upgrade with HTTP 401, or accept it and then send
        ``Error`` + close 1008 "Unauthorized Connection" (the code AssemblyAI's close-code table
        lists for a missing/invalid key). ``partial_interval``: seconds of audio between partials.
        """
        self._transcribe = transcribe
        self.api_key = api_key
        self.host = host
        self.bad_key_response = bad_key_response
        self.partial_interval = partial_interval
        self.base_url = ""
        self.sessions: list[SessionRecord] = []
        self.rejected = 0
        self._live: list[_Session] = []
        self._pending_drop: tuple[float, int | None] | None = None
        self._pending_drop_after_partial: float | None = None
        self._runner: web.AppRunner | None = None
        self._vad: agents_vad.VAD | None = None
        self._asr_pool: ThreadPoolExecutor | None = None

    async def __aenter__(self) -> AssemblyAIStandIn:
        # Loading the ONNX model blocks for a moment; keep the caller's loop free meanwhile.
        self._vad = await asyncio.to_thread(silero.VAD.load)
        # One worker: the recogniser is CPU-heavy and need not be thread-safe; sessions queue.
        self._asr_pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="aai-standin-asr")
        app = web.Application()
        app.router.add_get("/v3/ws", self._handle)
        app.router.add_get("/v3/token", self._token)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        await web.TCPSite(self._runner, self.host, 0).start()
        self.base_url = f"ws://{self.host}:{self._runner.addresses[0][1]}"
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        for session in list(self._live):
            await session.close(1001)  # "going away"
        if self._runner is not None:
            await self._runner.cleanup()
        if self._asr_pool is not None:
            self._asr_pool.shutdown(wait=False, cancel_futures=True)

    def drop_next_session_after(
        self, seconds_of_audio: float, *, close_code: int | None = None
    ) -> None:
        """Cut off the live session (or, if none, the next one) once it has received this much
        audio in total, without a Termination. ``close_code=None`` is a network drop (the TCP
        connection is aborted, no close frame: the client sees 1006); a code such as 3005
        ("Session Cancelled") sends ``Error`` + close with it, as the real service does."""
        live = [s for s in self._live if s.drop_at is None]
        if live:
            live[-1].drop_at = (seconds_of_audio, close_code)
        else:
            self._pending_drop = (seconds_of_audio, close_code)

    def drop_next_session_after_first_partial(self, more_audio_s: float = 0.5) -> None:
        """Cut off the next session (a network drop) once it has sent its first partial and
        then received `more_audio_s` more audio: a turn is surely in flight, however slow the
        machine is at transcribing."""
        self._pending_drop_after_partial = more_audio_s

    async def _token(self, request: web.Request) -> web.Response:
        """``GET /v3/token?expires_in_seconds=…``: a temporary streaming token for a valid key
        (what the kit's `check` uses to validate a key without opening a session)."""
        if request.headers.get("Authorization") != self.api_key:
            self.rejected += 1
            return web.json_response({"error": "Invalid API key"}, status=401)
        expires = request.query.get("expires_in_seconds", "")
        if not expires.isdigit() or not 1 <= int(expires) <= 600:
            return web.json_response({"error": "expires_in_seconds must be 1-600"}, status=400)
        return web.json_response({"token": uuid.uuid4().hex, "expires_in_seconds": int(expires)})

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        headers = {
            k: "<redacted>" if k.lower() == "authorization" else v
            for k, v in request.headers.items()
        }
        if request.headers.get("Authorization") != self.api_key:
            self.rejected += 1
            if self.bad_key_response == "http_401":
                return web.json_response({"error": "Invalid API key"}, status=401)
            ws = web.WebSocketResponse()
            await ws.prepare(request)
            await _fail(ws, 1008, "Unauthorized Connection: Invalid API key")
            return ws

        ws = web.WebSocketResponse()
        await ws.prepare(request)
        record = SessionRecord(id=str(uuid.uuid4()), query=dict(request.query), headers=headers)
        self.sessions.append(record)
        if problem := _invalid_query(request.query):
            record.close_code = 3006
            await _fail(ws, 3006, problem)
            return ws

        session = _Session(self, request, ws, record)
        if self._pending_drop is not None:
            session.drop_at, self._pending_drop = self._pending_drop, None
        if self._pending_drop_after_partial is not None:
            session.drop_after_partial = self._pending_drop_after_partial
            self._pending_drop_after_partial = None
        self._live.append(session)
        try:
            await session.run()
        finally:
            self._live.remove(session)
        return ws


class _Session:
    """One websocket connection: audio in, VAD-driven turns, transcripts out."""

    def __init__(
        self,
        server: AssemblyAIStandIn,
        request: web.Request,
        ws: web.WebSocketResponse,
        record: SessionRecord,
    ) -> None:
        assert server._vad is not None
        self._server, self._request, self._ws, self.record = server, request, ws, record
        self.drop_at: tuple[float, int | None] | None = None
        self.drop_after_partial: float | None = None
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
        self._vad_stream = server._vad.stream()
        self._jobs: asyncio.Queue[_Job | None] = asyncio.Queue()
        self._turn_start: int | None = None  # sample index, while a turn is open
        self._turn_floor = 0  # a new turn may not reach back before the previous one's end
        self._last_partial_at = 0
        self._partial_queued = False  # at most one partial waits for the recogniser
        self._pause_partial_sent = False
        self._opened = time.monotonic()
        self._aborted = False  # the TCP connection was cut: there is no one to close to

    async def run(self) -> None:
        expires_at = int(time.time()) + SESSION_LIFETIME_S
        await self._send({"type": "Begin", "id": self.record.id, "expires_at": expires_at})
        vad_task = asyncio.create_task(self._watch_vad())
        asr_task = asyncio.create_task(self._asr_worker())
        try:
            async for msg in self._ws:
                if msg.type == WSMsgType.BINARY:
                    if not await self._on_audio(msg.data):
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
            if not self._aborted and not self._ws.closed:
                await self.close(1000)  # the client went away without Terminate
            elif self.record.close_code is None and not self._aborted:
                self.record.close_code = self._ws.close_code  # the client closed first

    async def close(self, code: int) -> None:
        if not self._ws.closed:
            self.record.close_code = code
            await self._ws.close(code=code)

    async def _error(self, code: int, message: str) -> None:
        if not self._ws.closed:
            self.record.close_code = code  # first: the await below may be cancelled by teardown
            await _fail(self._ws, code, message)

    # ---- client → server ----------------------------------------------------------------

    async def _on_audio(self, data: bytes) -> bool:
        """Store and VAD the audio; False once the session has been dropped."""
        self.record.audio_bytes += len(data)
        if self._mulaw:
            samples = _mulaw_to_int16(data)
        else:
            data, self._carry = self._carry + data, b""
            if len(data) % 2:
                data, self._carry = data[:-1], data[-1:]
            samples = np.frombuffer(data, dtype="<i2")
        self._samples_in += len(samples)
        self.record.audio_seconds = self._samples_in / self._rate
        frame = rtc.AudioFrame(samples.astype(np.int16).tobytes(), self._rate, 1, len(samples))
        self._push(self._resampler.push(frame) if self._resampler else [frame])

        if self.drop_at is not None and self.record.audio_seconds >= self.drop_at[0]:
            await self._drop(self.drop_at[1])
            return False
        return True

    def _push(self, frames: list[rtc.AudioFrame]) -> None:
        for frame in frames:
            self._pcm += bytes(frame.data)
            self._vad_stream.push_frame(frame)

    async def _on_control(self, text: str, vad_task: asyncio.Task, asr_task: asyncio.Task) -> bool:
        """Handle a JSON message; False when the session is over."""
        try:
            msg = json.loads(text)
            kind = msg["type"]
        except (ValueError, TypeError, KeyError):
            await self._error(3006, f"Invalid Message: {text[:64]}")
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
            await self._error(3006, f"Invalid Message Type: {kind}")
            return False
        return True

    async def _terminate(self, vad_task: asyncio.Task, asr_task: asyncio.Task) -> None:
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

    async def _drop(self, close_code: int | None) -> None:
        self.record.dropped = True
        if close_code is not None:
            await self._error(close_code, "Session Cancelled: An error occurred")
        elif (transport := self._request.transport) is not None:
            self._aborted = True
            transport.abort()  # no close frame: what a network failure looks like to the client

    # ---- turn detection -----------------------------------------------------------------

    async def _watch_vad(self) -> None:
        """Open a turn on speech; partial every partial_interval of audio and once per pause of
        min_turn_silence; end the turn after max_turn_silence. There is no semantic end-of-turn
        model here, so a pause shorter than max_turn_silence never ends a turn."""
        interval = int(self._server.partial_interval * SAMPLE_RATE)
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
        loop = asyncio.get_running_loop()
        turn_order, turn_started = 0, False
        while (job := await self._jobs.get()) is not None:
            if job.kind == "speech_started":
                confidence = round(float(job.confidence), 3)
                await self._send(
                    {"type": "SpeechStarted", "timestamp": _ms(job.start), "confidence": confidence}
                )
                continue
            final = job.kind == "final"
            audio = np.frombuffer(bytes(self._pcm[job.start * 2 : job.end * 2]), dtype=np.int16)
            audio = audio.astype(np.float32) / 32768.0
            try:
                raw = await loop.run_in_executor(
                    self._server._asr_pool, self._server._transcribe, audio
                )
            except Exception:
                # What the service does on an internal error; the traceback goes to the test log.
                logger.exception("transcribe callable failed")
                await self._error(3005, "Session Cancelled: An error occurred")
                return
            if not final:
                self._partial_queued = False
            words = _words(raw, job.start, len(audio) / SAMPLE_RATE, final)
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
                "words": words,
                "utterance": "",  # utterance boundaries (the plugin's preflight) are not modelled
            }
            await self._send(turn)
            turn_started = True
            if not final and self.drop_after_partial is not None:
                self.drop_at = (self.record.audio_seconds + self.drop_after_partial, None)
                self.drop_after_partial = None
            if not final:
                continue
            if str(self._config.get("format_turns", "false")).lower() == "true":
                # Formatting is only approximated: first letter capitalised, final period added.
                await self._send(
                    {**turn, "turn_is_formatted": True, "transcript": _format(turn["transcript"])}
                )
            turn_order, turn_started = turn_order + 1, False

    async def _send(self, msg: dict[str, Any]) -> None:
        if self._ws.closed:
            return
        try:
            await self._ws.send_json(msg)
        except ConnectionError:
            return
        if msg["type"] == "Turn":
            self.record.turns.append(msg)


def _words(raw: Sequence[Word], start: int, duration: float, final: bool) -> list[dict[str, Any]]:
    """The callable's words as the service sends them: unformatted text, ms from stream start."""
    words = []
    for word in raw:
        text = _unformatted(str(word[0]))
        if not text:
            continue
        begin, end = max(float(word[1]), 0.0), max(float(word[2]), float(word[1]), 0.0)
        words.append(
            {
                "text": text,
                "start": _ms(start) + round(begin * 1000),
                "end": _ms(start) + round(end * 1000),
                "confidence": round(float(word[3]), 3) if len(word) > 3 else 1.0,
                "word_is_final": final or end <= duration - STABLE_TAIL_S,
            }
        )
    return words


def _unformatted(text: str) -> str:
    """Unformatted turns are lower case without punctuation (apostrophes, hyphens kept)."""
    return re.sub(r"[^\w'-]", "", text.lower()).strip("'-")


def _format(transcript: str) -> str:
    if not transcript:
        return transcript
    text = transcript[0].upper() + transcript[1:]
    return text if text[-1] in ".?!" else text + "."


def _ms(samples: int) -> int:
    return round(samples * 1000 / SAMPLE_RATE)


def _invalid_query(query: Any) -> str | None:
    """The connection parameters the stand-in needs; anything else is recorded, not checked."""
    rate = query.get("sample_rate", "")
    if not rate.isdigit() or int(rate) <= 0:
        return f"Invalid sample_rate: {rate!r}"
    if query.get("encoding", "pcm_s16le") not in ("pcm_s16le", "pcm_mulaw"):
        return f"Invalid encoding: {query.get('encoding')!r}"
    return None


async def _fail(ws: web.WebSocketResponse, code: int, message: str) -> None:
    """The documented error path: an Error frame, then a close with the same code."""
    await ws.send_json({"type": "Error", "error_code": code, "error": message})
    await ws.close(code=code, message=message.encode()[:123])


def _mulaw_to_int16(data: bytes) -> np.ndarray:
    """G.711 μ-law to linear 16-bit PCM."""
    u = ~np.frombuffer(data, dtype=np.uint8)
    exponent = ((u >> 4) & 0x07).astype(np.int32)
    magnitude = ((((u & 0x0F).astype(np.int32)) << 3) + 0x84) << exponent
    return np.where(u & 0x80, 0x84 - magnitude, magnitude - 0x84).astype(np.int16)
