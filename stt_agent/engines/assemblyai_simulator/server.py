"""The simulator's server: keys, temporary tokens and the ``/v3/ws`` upgrade on a local port."""

from __future__ import annotations

import asyncio
import secrets
import uuid
from collections.abc import Sequence
from concurrent.futures import Executor, ThreadPoolExecutor
from dataclasses import replace
from typing import Any

import numpy as np
from aiohttp import web
from livekit.agents import vad as agents_vad

from ...config import Secret, Settings
from ...errors import EngineError
from ..vad import load_vad
from .recogniser import TranscribeFn, Word, whisper_words
from .session import SessionRecord, SimulatedSession
from .wire import invalid_query, send_error

__all__ = ["AssemblyAISimulator"]


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
        self._live: list[SimulatedSession] = []
        self._runner: web.AppRunner | None = None
        self._vad: agents_vad.VAD | None = None
        self._executor: Executor | None = None

    @property
    def base_url(self) -> str:
        """What `assemblyai.STT(base_url=…)` and ``ASSEMBLYAI_BASE_URL`` take."""
        return self.url

    def settings(self, base: Settings | None = None, **changes: Any) -> Settings:
        """`base` (default: all defaults) pointed at this simulator with its key, AssemblyAI
        chosen as the engine, then `changes` applied (e.g. the turn-silence settings)."""
        if not self.url:
            raise EngineError(
                "the AssemblyAI simulator is not running: start it first "
                "(`async with AssemblyAISimulator() as sim:`)"
            )
        aimed = replace(
            base or Settings(),
            assemblyai_api_key=self.api_key,
            assemblyai_base_url=self.url,
            engine_choice="assemblyai",
        )
        return replace(aimed, **changes)

    async def start(self) -> AssemblyAISimulator:
        # Loading the models blocks for a moment; keep the caller's loop free meanwhile.
        self._vad = await asyncio.to_thread(load_vad)
        app = web.Application()
        app.router.add_get("/v3/ws", self._handle)
        app.router.add_get("/v3/token", self._token)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        try:
            await web.TCPSite(self._runner, self.host, self.port).start()
        except OSError as e:
            await self._runner.cleanup()
            self._runner = None
            raise EngineError(
                f"the AssemblyAI simulator cannot listen on {self.host}:{self.port}: "
                f"{e.strerror or e}; pass another port (port=0 takes a free one)"
            ) from None
        self.port = self._runner.addresses[0][1]
        self.url = f"ws://{self.host}:{self.port}"
        return self

    async def aclose(self) -> None:
        for session in list(self._live):
            await session.close(1001)  # "going away"
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)
            self._executor = None
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

    async def _after_audio(self, session: SimulatedSession) -> bool:
        """Called after each audio message; False ends the session (it was dropped)."""
        return True

    def _outgoing_turn(
        self, session: SimulatedSession, turn: dict[str, Any]
    ) -> dict[str, Any] | None:
        """Called with each Turn message before it is sent: what to send instead (None: send
        nothing). Tests use it for services whose word times are missing or off, or that go
        quiet."""
        return turn

    # ---- what sessions use -------------------------------------------------------------

    def vad_stream(self) -> agents_vad.VADStream:
        """A new Silero VAD stream for a session (the model is loaded by `start()`)."""
        if self._vad is None:
            raise EngineError("the AssemblyAI simulator is not running: start it first")
        return self._vad.stream()

    async def recognise(self, audio: np.ndarray) -> Sequence[Word]:
        """Words for 16 kHz float32 samples, from the recogniser, off the event loop."""
        if self._executor is None:
            # One worker: a recogniser is CPU-heavy and need not be thread-safe; sessions queue.
            self._executor = ThreadPoolExecutor(1, thread_name_prefix="aai-simulator-asr")
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, self._transcribe, audio)

    # ---- HTTP ---------------------------------------------------------------------------

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
        if problem := invalid_query(request.query):
            record.close_code = 3006
            await send_error(ws, 3006, problem)
            return ws

        session = SimulatedSession(self, request, ws, record)
        self._live.append(session)
        try:
            await session.run()
        finally:
            self._live.remove(session)
        return ws
