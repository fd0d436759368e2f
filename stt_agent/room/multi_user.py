"""Every participant transcribed: one `AgentSession` per participant who publishes audio.

This is LiveKit's multi-user transcriber pattern (livekit/agents,
examples/other/transcription/multi-user-transcriber.py): a session is linked to one
participant with `RoomOptions(participant_identity=...)`, so a room of attendees needs one
session each. Sessions start when a participant publishes a microphone (or is already
publishing when the agent joins) and stop when they unpublish it or leave; agents (and
avatars publishing on an agent's behalf) are never transcribed.

Each session's transcriptions are published to the room by LiveKit's room IO as
`lk.transcription` text streams attributed to the speaker's track, and every Transcriber
shares the kit's turn handlers and feed. With the local engine every session gets its own
`LocalSTT`, and they all share the one faster-whisper model loaded per process.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from typing import Any

from livekit import rtc
from livekit.agents import AgentSession, AutoSubscribe, JobContext, room_io
from livekit.agents import stt as lk_stt
from livekit.agents.types import ATTRIBUTE_PUBLISH_ON_BEHALF
from livekit.rtc.room import EventTypes as RoomEvent

from ..agent import Transcriber, make_session
from ..config import Settings
from ..engines import LocalSTT, make_stt
from ..feed import TranscriptFeed
from ..handlers import TurnHandlers
from ..observer import TurnObserver
from ..progress import RunProgress, current_progress
from .worker_load import StreamLoad

__all__ = ["MultiUserTranscriber", "new_transcriber", "transcribe_room"]

logger = logging.getLogger("transcriber")

# A participant who leaves mid-sentence: how long their last words may take to come out.
_DRAIN_TIMEOUT_S = 10.0
# When the agent itself stops: `AgentHandle.stop()` promises to be done within a few seconds.
_STOP_DRAIN_TIMEOUT_S = 2.0


def new_transcriber(
    settings: Settings,
    *,
    feed: TranscriptFeed,
    handlers: TurnHandlers,
    source: str | None,
    participant: str,
) -> Transcriber:
    """The one place room mode makes a Transcriber (one per transcribed participant)."""
    stt = make_stt(settings)
    turns = TurnObserver(
        feed=feed,
        handlers=handlers,
        source=source,
        participant=participant,
        # the session's own progress record, so a leaving participant can be drained
        progress=RunProgress(exact=isinstance(stt, LocalSTT)),
    )
    return Transcriber(stt=stt, turns=turns)


async def transcribe_room(
    ctx: JobContext,
    settings: Settings,
    *,
    feed: TranscriptFeed | None = None,
    handlers: TurnHandlers | None = None,
    on_change: Callable[[tuple[str, ...]], Any] | None = None,
    load: StreamLoad | None = None,
) -> MultiUserTranscriber:
    """The room entrypoint, for the CLI's worker and the notebook's alike: join audio-only,
    then transcribe every participant who speaks until the job ends."""
    feed = feed if feed is not None else TranscriptFeed()
    handlers = handlers if handlers is not None else TurnHandlers()
    room_name = ctx.room.name
    transcriber = MultiUserTranscriber(
        ctx.room,
        lambda identity: new_transcriber(
            settings, feed=feed, handlers=handlers, source=room_name, participant=identity
        ),
        on_change=on_change,
        load=load,
    )
    await ctx.connect(auto_subscribe=AutoSubscribe.AUDIO_ONLY)
    transcriber.start()  # every participant who publishes audio, under their identity
    ctx.add_shutdown_callback(transcriber.aclose)
    return transcriber


class MultiUserTranscriber:
    """Starts and stops one transcribing `AgentSession` per audio-publishing participant.

    `make_agent(identity)` returns a fresh Transcriber for that participant; `on_change` is called
    with the identities being transcribed whenever that set changes.
    """

    def __init__(
        self,
        room: rtc.Room,
        make_agent: Callable[[str], Transcriber],
        *,
        on_change: Callable[[tuple[str, ...]], Any] | None = None,
        load: StreamLoad | None = None,
    ) -> None:
        self.room = room
        self._make_agent = make_agent
        self._on_change = on_change
        self._load = load
        self._sessions: dict[str, tuple[AgentSession[None], Transcriber]] = {}
        self._starting: dict[str, asyncio.Task[None]] = {}
        self._closing: set[str] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._closed = False
        # The room's events this class follows, typed with the literal names `Room.on` accepts.
        self._events: dict[RoomEvent, Callable[..., None]] = {
            "participant_connected": self._consider,
            "track_published": lambda _pub, participant: self._consider(participant),
            "track_unpublished": lambda _pub, participant: self._consider(participant),
            "participant_disconnected": lambda participant: self._stop(participant.identity),
        }

    @property
    def identities(self) -> tuple[str, ...]:
        """Who is being transcribed right now."""
        return tuple(self._sessions)

    def start(self) -> None:
        """Follow the room, and transcribe whoever already publishes audio."""
        for event, callback in self._events.items():
            self.room.on(event, callback)
        for participant in self.room.remote_participants.values():
            self._consider(participant)

    async def aclose(self) -> None:
        """Stop every session, letting each finish the words it already heard (bounded)."""
        self._closed = True
        for event, callback in self._events.items():
            self.room.off(event, callback)
        for identity in list(self._sessions) + list(self._starting):
            self._stop(identity, drain_s=_STOP_DRAIN_TIMEOUT_S)
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    # --- who is transcribed -----------------------------------------------------------

    @staticmethod
    def wants(participant: rtc.RemoteParticipant) -> bool:
        """A participant publishing audio who is neither an agent nor speaks for one."""
        if participant.kind == rtc.ParticipantKind.PARTICIPANT_KIND_AGENT:
            return False
        if participant.attributes.get(ATTRIBUTE_PUBLISH_ON_BEHALF):
            return False
        return any(
            pub.kind == rtc.TrackKind.KIND_AUDIO for pub in participant.track_publications.values()
        )

    def _consider(self, participant: rtc.RemoteParticipant) -> None:
        identity = participant.identity
        if self._closed:
            return
        if not self.wants(participant):
            self._stop(identity)
        elif not ({identity} & (self._sessions.keys() | self._starting.keys() | self._closing)):
            task = asyncio.create_task(self._start(identity), name=f"transcribe {identity}")
            self._starting[identity] = task
            self._track(task)

    def _stop(self, identity: str, drain_s: float = _DRAIN_TIMEOUT_S) -> None:
        starting = self._starting.get(identity)
        if identity in self._closing:
            return
        if identity in self._sessions or starting is not None:
            self._closing.add(identity)
            self._track(asyncio.create_task(self._close(identity, starting, drain_s)))

    def _track(self, task: asyncio.Task[None]) -> None:
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _changed(self) -> None:
        if self._on_change is not None:
            self._on_change(self.identities)

    # --- one session --------------------------------------------------------------------

    async def _start(self, identity: str) -> None:
        session = make_session()
        agent = self._make_agent(identity)
        # The STT stream, created inside `start`, reports to this session's progress record.
        token = current_progress.set(agent.turns.progress)
        try:
            await session.start(
                agent=agent,
                room=self.room,
                room_options=room_io.RoomOptions(
                    participant_identity=identity,
                    audio_output=False,
                    text_output=True,
                    # several sessions cannot share the room's chat input; none is needed
                    text_input=False,
                    # this class closes the session, after its last words are out
                    close_on_disconnect=False,
                ),
            )
        except Exception:
            logger.exception(f"could not start transcribing {identity}")
            with contextlib.suppress(Exception):
                await session.aclose()
            raise
        finally:
            current_progress.reset(token)
            self._starting.pop(identity, None)
        self._sessions[identity] = (session, agent)
        if self._load is not None:
            self._load.started()
        logger.info(f"transcribing {identity}")
        self._changed()

    async def _close(
        self, identity: str, starting: asyncio.Task[None] | None, drain_s: float
    ) -> None:
        try:
            if starting is not None:
                with contextlib.suppress(Exception, asyncio.CancelledError):
                    await starting
            entry = self._sessions.get(identity)
            if entry is None:
                return
            session, agent = entry
            try:
                await _drained(agent, drain_s)
                agent.turns.close()  # a turn stuck in a handler must not hold the session
                await session.aclose()
                await agent.turns.aclose()
            finally:
                if isinstance(agent.stt, lk_stt.STT):
                    await agent.stt.aclose()
                # still listed while its last words come out: "being transcribed" until here
                del self._sessions[identity]
                if self._load is not None:
                    self._load.stopped()
                self._changed()
            logger.info(f"stopped transcribing {identity}")
        finally:
            self._closing.discard(identity)


async def _drained(agent: Transcriber, timeout: float) -> None:
    """Until the words already heard have gone through the handlers, or `timeout`."""
    progress = agent.turns.progress
    deadline = time.monotonic() + timeout
    while (progress.owes_answer or progress.turns_open) and time.monotonic() < deadline:
        await progress.changed(timeout=0.1)
