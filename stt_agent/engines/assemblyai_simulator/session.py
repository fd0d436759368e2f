"""A local simulator of AssemblyAI's v3 streaming API that transcribes with the local engine.

For learning and workshops without an AssemblyAI key or network: the real
`livekit-plugins-assemblyai` client connects to it exactly as it would to
``wss://streaming.assemblyai.com``, and the turn settings travel the same way::

    from stt_agent.assemblyai_simulator import AssemblyAISimulator

    async with AssemblyAISimulator() as sim:           # 127.0.0.1, a free port, a random key
        settings = sim.settings(assemblyai_max_turn_silence_ms=800)
        stt = stt_agent.make_stt(settings)             # the real AssemblyAI plugin
        utterances = await stt_agent.transcribe(samples.path("jfk"), stt=stt, realtime=True)
        await stt.aclose()

It is never used unless asked for. What it simulates, from AssemblyAI's documentation
("Message Sequence", "Common session errors and closures"):

* ``GET /v3/ws?sample_rate=…&encoding=pcm_s16le&speech_model=…`` upgraded to a websocket, with
  the API key (no "Bearer") in the ``Authorization`` header; a wrong key gets HTTP 401;
* client → server: binary audio, and JSON ``UpdateConfiguration``, ``ForceEndpoint``,
  ``KeepAlive``, ``Terminate``;
* server → client: ``Begin``; ``SpeechStarted`` (Universal-3 Pro models only); ``Turn``
  messages: partials, the end-of-turn one (lower case, no punctuation) and, with
  ``format_turns=true``, a formatted copy (punctuated, capitalised); ``Termination`` after
  ``Terminate``, then close 1000; ``Error`` + close 3006 for bad input;
* ``GET /v3/token``: a temporary streaming token for a valid key (what `check` uses).

What it does not: AssemblyAI's end-of-turn *model*. Silero VAD finds the speech; a turn ends
after ``max_turn_silence`` of silence (a partial is sent after ``min_turn_silence``), so a
pause shorter than that never ends a turn. The words come from the local engine (Whisper
tiny.en by default), whose own punctuation and casing make the formatted turns.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import secrets
import time
import uuid
from collections.abc import Callable, Sequence
from concurrent.futures import Executor
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
from aiohttp import WSMsgType, web
from livekit import rtc
from livekit.agents import vad as agents_vad

from .config import Secret, Settings

if TYPE_CHECKING:
    from .engines import _LoadedModel

__all__ = ["AssemblyAISimulator", "SessionRecord", "TranscribeFn", "Word", "whisper_words"]

# (text as recognised, start s, end s[, confidence]), times relative to the array passed in.
# The text may carry punctuation and capitals: unformatted turns strip them, formatted keep them.
Word = tuple[str, float, float] | tuple[str, float, float, float]
# Float32 mono samples at 16 kHz in, words out. Called on a worker thread, one call at a time.
TranscribeFn = Callable[[np.ndarray], Sequence[Word]]

logger = logging.getLogger("stt_agent.assemblyai_simulator")

SAMPLE_RATE = 16_000  # the rate the VAD and the recogniser work at
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


def whisper_words(model_name: str | None = None) -> TranscribeFn:
    """The local engine's Whisper model as a `TranscribeFn` (loaded on first use, shared)."""
    from .engines import BUNDLED_MODEL_NAME

    name = model_name or BUNDLED_MODEL_NAME

    def transcribe(samples: np.ndarray) -> list[Word]:
        loaded = _whisper(name)
        segments, _ = loaded.model.transcribe_short(
            samples,
            language="en" if loaded.english_only else None,
            beam_size=1,
            word_timestamps=True,
            condition_on_previous_text=False,
        )
        return [(w.word, w.start, w.end, w.probability) for s in segments for w in s.words or []]

    transcribe.executor = lambda: _whisper(name).executor  # type: ignore[attr-defined]
    return transcribe


def _whisper(name: str) -> _LoadedModel:
    from .engines import load_whisper

    return load_whisper(name)


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


class AssemblyAISimulator:
    """The server: accepts ``/v3/ws`` sessions on a local port while it is open."""

    def __init__(
        self,
        *,
        api_key: str | Secret | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        transcribe: TranscribeFn | None = None,
        partial_interval: float = 0.6,
    ) -> None:
        """``api_key``: the key clients must send (a random one by default, see `settings()`).
        ``port=0`` takes a free port. ``transcribe``: samples to words; the local engine's
        Whisper by default. ``partial_interval``: seconds of speech between partials."""
        key = api_key if isinstance(api_key, Secret) else Secret(api_key or secrets.token_hex(16))
        self.api_key = key
        self.host = host
        self.port = port
        self.partial_interval = partial_interval
        self.url = ""
        self.sessions: list[SessionRecord] = []
        self.rejected = 0  # connections refused for a wrong key
        self._transcribe = transcribe or whisper_words()
        self._live: list[_Session] = []
        self._runner: web.AppRunner | None = None
        self._vad: agents_vad.VAD | None = None
        self._own_executor: Executor | None = None

    @property
    def base_url(self) -> str:
        """What `assemblyai.STT(base_url=…)` and ``ASSEMBLYAI_BASE_URL`` take."""
        return self.url

    def settings(self, base: Settings | None = None, **changes: Any) -> Settings:
        """`base` (default: all defaults) pointed at this simulator with its key, AssemblyAI
        chosen as the engine, then `changes` applied (e.g. the turn-silence settings)."""
        if not self.url:
            raise RuntimeError("the AssemblyAI simulator is not running: use `async with` first")
        aimed = replace(
            base or Settings(),
            assemblyai_api_key=self.api_key,
            assemblyai_base_url=self.url,
            engine_choice="assemblyai",
        )
        return replace(aimed, **changes)

    async def start(self) -> AssemblyAISimulator:
        from .engines import load_vad

        # Loading the models blocks for a moment; keep the caller's loop free meanwhile.
        self._vad = await asyncio.to_thread(load_vad)
        app = web.Application()
        app.router.add_get("/v3/ws", self._handle)
        app.router.add_get("/v3/token", self._token)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, self.host, self.port).start()
        self.port = self._runner.addresses[0][1]
        self.url = f"ws://{self.host}:{self.port}"
        return self

    async def aclose(self) -> None:
        for session in list(self._live):
            await session.close(1001)  # "going away"
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        if self._own_executor is not None:
            self._own_executor.shutdown(wait=False, cancel_futures=True)
        self.url = ""

    async def __aenter__(self) -> AssemblyAISimulator:
        return await self.start()

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    def __repr__(self) -> str:  # the key stays a masked Secret
        state = self.url or "not running"
        return f"AssemblyAISimulator({state}, {len(self.sessions)} session(s))"

    # ---- hooks for tests that need failures the simulator does not make by itself ------

    async def _refuse_key(self, request: web.Request) -> web.StreamResponse:
        """A wrong key: refuse the upgrade, as the service does."""
        return web.json_response({"error": "Invalid API key"}, status=401)

    async def _after_audio(self, session: _Session) -> bool:
        """Called after each audio message; False ends the session (it was dropped)."""
        return True

    # ---- HTTP ---------------------------------------------------------------------------

    def _executor(self) -> Executor | None:
        factory = getattr(self._transcribe, "executor", None)
        if factory is not None:
            return factory()  # the local engine's own decoding thread
        if self._own_executor is None:
            from concurrent.futures import ThreadPoolExecutor

            # One worker: a recogniser is CPU-heavy and need not be thread-safe; sessions queue.
            self._own_executor = ThreadPoolExecutor(1, thread_name_prefix="aai-simulator-asr")
        return self._own_executor

    def _key_ok(self, request: web.Request) -> bool:
        sent = request.headers.get("Authorization", "")
        return secrets.compare_digest(sent.encode(), self.api_key.reveal().encode())

    async def _token(self, request: web.Request) -> web.Response:
        """``GET /v3/token?expires_in_seconds=…``: a temporary streaming token for a valid key."""
        if not self._key_ok(request):
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
        if not self._key_ok(request):
            self.rejected += 1
            return await self._refuse_key(request)

        ws = web.WebSocketResponse()
        await ws.prepare(request)
        record = SessionRecord(id=str(uuid.uuid4()), query=dict(request.query), headers=headers)
        self.sessions.append(record)
        if problem := _invalid_query(request.query):
            record.close_code = 3006
            await send_error(ws, 3006, problem)
            return ws

        session = _Session(self, request, ws, record)
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
        server: AssemblyAISimulator,
        request: web.Request,
        ws: web.WebSocketResponse,
        record: SessionRecord,
    ) -> None:
        assert server._vad is not None
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
        self._vad_stream = server._vad.stream()
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
                    self.server._executor(), self.server._transcribe, audio
                )
            except Exception:
                # What the service does on an internal error; the details go to the log.
                logger.exception("the simulator's recogniser failed")
                await self.error(3005, "Session Cancelled: An error occurred")
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
                        "transcript": _formatted(w["text"] for w in formatted_words),
                        "words": formatted_words,
                    }
                )
            turn_order, turn_started = turn_order + 1, False

    async def _send(self, msg: dict[str, Any]) -> None:
        if self.ws.closed:
            return
        try:
            await self.ws.send_json(msg)
        except ConnectionError:
            return
        if msg["type"] == "Turn":
            self.record.turns.append(msg)


def _words(raw: Sequence[Word], start: int, duration: float, final: bool) -> list[dict[str, Any]]:
    """The recogniser's words as the service sends them (ms from stream start), each with its
    `formatted` text alongside for the formatted copy of a final turn."""
    words = []
    for word in raw:
        shown = str(word[0]).strip()
        text = _unformatted(shown)
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
                "formatted": shown,
            }
        )
    return words


def _unformatted(text: str) -> str:
    """Unformatted turns are lower case without punctuation (apostrophes, hyphens kept)."""
    return re.sub(r"[^\w'-]", "", text.lower()).strip("'-")


def _formatted(texts: Any) -> str:
    """A formatted turn: the recogniser's own punctuation and casing, as one sentence or more
    that starts with a capital and ends with a full stop (or ? or !)."""
    text = " ".join(t for t in texts if t).strip()
    if not text:
        return text
    text = text[0].upper() + text[1:]
    text = text.rstrip(",;:-– ")
    return text if text[-1] in ".?!" else text + "."


def _ms(samples: int) -> int:
    return round(samples * 1000 / SAMPLE_RATE)


def _invalid_query(query: Any) -> str | None:
    """The connection parameters the simulator needs; anything else is recorded, not checked."""
    rate = query.get("sample_rate", "")
    if not rate.isdigit() or int(rate) <= 0:
        return f"Invalid sample_rate: {rate!r}"
    if query.get("encoding", "pcm_s16le") not in ("pcm_s16le", "pcm_mulaw"):
        return f"Invalid encoding: {query.get('encoding')!r}"
    return None


async def send_error(ws: web.WebSocketResponse, code: int, message: str) -> None:
    """The documented error path: an Error frame, then a close with the same code."""
    await ws.send_json({"type": "Error", "error_code": code, "error": message})
    await ws.close(code=code, message=message.encode()[:123])


def _mulaw_to_int16(data: bytes) -> np.ndarray:
    """G.711 μ-law to linear 16-bit PCM."""
    u = ~np.frombuffer(data, dtype=np.uint8)
    exponent = ((u >> 4) & 0x07).astype(np.int32)
    magnitude = ((((u & 0x0F).astype(np.int32)) << 3) + 0x84) << exponent
    return np.where(u & 0x80, 0x84 - magnitude, magnitude - 0x84).astype(np.int16)
