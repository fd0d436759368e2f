"""AssemblyAI's v3 streaming API for tests: the kit's simulator plus failures on demand.

The protocol itself (``/v3/ws``, Begin / Turn / Termination, formatted turns, close codes,
``/v3/token``) is the kit's `stt_agent.engines.assemblyai_simulator.AssemblyAISimulator`, which
notebook 05 teaches with. What only tests need lives here:

* ``bad_key_response="close_1008"``: accept the upgrade for a wrong key, then send ``Error`` +
  close 1008 "Unauthorized Connection" (the other behaviour AssemblyAI's close-code table
  lists for a missing or invalid key; the simulator answers HTTP 401);
* ``drop_next_session_after(seconds)``: cut a session off mid-stream, as a network failure
  (no close frame) or with a close code such as 3005 "Session Cancelled";
* ``drop_next_session_after_first_partial()``: the same once a turn is surely in flight,
  however slow the machine is at transcribing;
* ``word_times``: words whose times are missing (no ``start``/``end``), zero, or counted by a
  clock ``WORD_TIME_SHIFT_S`` behind the stream's (never below 0): services whose clock does
  not agree with the client's;
* ``drop_next_session_after_first_final()``: a drop once the first turn has been answered,
  in the pause after it (no words in flight);
* ``answer_only_the_first_turn()``: sessions stay connected and take audio, but send no Turn
  after the first turn's: a service that really stalled.
"""

from __future__ import annotations

from typing import Any, Literal

from aiohttp import web

from stt_agent.engines.assemblyai_simulator import (
    AssemblyAISimulator,
    SessionRecord,
    SimulatedSession,
    TranscribeFn,
    Word,
    send_error,
)

__all__ = ["WORD_TIME_SHIFT_S", "AssemblyAIStandIn", "SessionRecord", "TranscribeFn", "Word"]

WordTimes = Literal["exact", "missing", "zero", "behind"]
WORD_TIME_SHIFT_S = 6.0  # how far behind the stream's clock "behind" word times are


class AssemblyAIStandIn(AssemblyAISimulator):
    """The simulator on a free local port, with a fixed test key and failure injection."""

    def __init__(
        self,
        *,
        transcribe: TranscribeFn,
        api_key: str = "test-key",
        host: str = "127.0.0.1",
        bad_key_response: Literal["http_401", "close_1008"] = "http_401",
        partial_interval: float = 0.6,
        word_times: WordTimes = "exact",
    ) -> None:
        super().__init__(
            api_key=api_key, host=host, transcribe=transcribe, partial_interval=partial_interval
        )
        self.bad_key_response = bad_key_response
        self._pending_drop: tuple[float, int | None] | None = None
        self._drops: dict[int, tuple[float, int | None]] = {}  # id(session) -> (at s, code)
        self._drop_after_partial: float | None = None
        self.word_times = word_times
        self._drop_after_final: float | None = None
        self._only_first_turn = False

    async def __aenter__(self) -> AssemblyAIStandIn:
        await self.start()
        return self

    def drop_next_session_after(
        self, seconds_of_audio: float, *, close_code: int | None = None
    ) -> None:
        """Cut off the live session (or, if none, the next one) once it has received this much
        audio in total, without a Termination. ``close_code=None`` is a network drop (the TCP
        connection is aborted, no close frame: the client sees 1006); a code such as 3005
        ("Session Cancelled") sends ``Error`` + close with it, as the real service does."""
        live = [s for s in self._live if id(s) not in self._drops]
        if live:
            self._drops[id(live[-1])] = (seconds_of_audio, close_code)
        else:
            self._pending_drop = (seconds_of_audio, close_code)

    def drop_next_session_after_first_partial(self, more_audio_s: float = 0.5) -> None:
        """Cut off the next session (a network drop) once it has sent its first partial and
        then received `more_audio_s` more audio: a turn is in flight, on any machine."""
        self._drop_after_partial = more_audio_s

    def drop_next_session_after_first_final(self, more_audio_s: float = 0.5) -> None:
        """Cut off the next session (a network drop) once it has sent its first end-of-turn
        Turn and then received `more_audio_s` more audio: on any machine, the first turn has
        been answered and, in a pause, nothing is in flight."""
        self._drop_after_final = more_audio_s

    def answer_only_the_first_turn(self) -> None:
        """Send no Turn after the first turn's (sessions stay connected and keep taking
        audio, as a stalled service does)."""
        self._only_first_turn = True

    def _outgoing_turn(
        self, session: SimulatedSession, turn: dict[str, Any]
    ) -> dict[str, Any] | None:
        if self._only_first_turn and turn["turn_order"] > 0:
            return None
        if self.word_times == "exact":
            return turn
        return {**turn, "words": [self._retimed(word) for word in turn["words"]]}

    def _retimed(self, word: dict[str, Any]) -> dict[str, Any]:
        untimed = {k: v for k, v in word.items() if k not in ("start", "end")}
        if self.word_times == "missing":
            return untimed
        if self.word_times == "zero":
            return {**untimed, "start": 0, "end": 0}
        shift = round(WORD_TIME_SHIFT_S * 1000)
        return {
            **untimed,
            "start": max(word["start"] - shift, 0),
            "end": max(word["end"] - shift, 0),
        }

    async def _refuse_key(self, request: web.Request) -> web.StreamResponse:
        if self.bad_key_response == "http_401":
            return await super()._refuse_key(request)
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        await send_error(ws, 1008, "Unauthorized Connection: Invalid API key")
        return ws

    async def _after_audio(self, session: SimulatedSession) -> bool:
        key = id(session)
        more = self._drop_after_partial
        if more is not None and any(not t["end_of_turn"] for t in session.record.turns):
            self._drop_after_partial = None
            self._drops[key] = (session.record.audio_seconds + more, None)
        more = self._drop_after_final
        if more is not None and any(t["end_of_turn"] for t in session.record.turns):
            self._drop_after_final = None
            self._drops[key] = (session.record.audio_seconds + more, None)
        if key not in self._drops and self._pending_drop is not None:
            self._drops[key], self._pending_drop = self._pending_drop, None
        drop = self._drops.get(key)
        if drop is None or session.record.audio_seconds < drop[0]:
            return True
        del self._drops[key]
        session.record.dropped = True
        if drop[1] is not None:
            await session.error(drop[1], "Session Cancelled: An error occurred")
        elif (transport := session.request.transport) is not None:
            session.aborted = True
            transport.abort()  # no close frame: what a network failure looks like to the client
        return False
