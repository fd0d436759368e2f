"""Room-mode frontends: a fresh room, a short-lived join token, and a way to speak into it.

`open_room` creates a room on your LiveKit server, mints a join token for you scoped to that
room only, and (with an agent name) explicitly dispatches the worker you started with
`start_agent(agent_name=...)` into it. `show_room` then puts LiveKit's own room page (the
one bundled with `livekit.rtc.jupyter`) in the notebook so your microphone joins the room.

The API secret is revealed only where it is handed to `livekit.api`; the user token is kept
out of every repr, str and error message (it is needed by the room page, see `show_room`).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import timedelta
from html import escape

import aiohttp
from livekit import api

from ..config import Settings
from ..errors import ConfigError, RoomError
from ..scrub import scrub
from .guard import require_livekit

__all__ = [
    "MIN_TOKEN_TTL",
    "PLAYGROUND_URL",
    "RoomError",
    "RoomSession",
    "mint_user_token",
    "open_room",
    "playground_url",
    "show_room",
]

# Tokens shorter-lived than this expire while a learner is still reading the cell output.
MIN_TOKEN_TTL = timedelta(minutes=10)
PLAYGROUND_URL = "https://agents-playground.livekit.io/"
# Read by the playground's ConfigProvider from the hash (livekit/agents-playground
# src/hooks/useConfig.tsx): microphone on, camera/video off, audio out on.
_PLAYGROUND_HASH = "#cam=0&mic=1&video=0&audio=1&chat=0&theme_color=cyan"
_API_TIMEOUT_S = 10.0


@dataclass(frozen=True)
class RoomSession:
    """A room made by `open_room`, and the user's way in.

    The join token is a private field: it is not in `repr`, `str` or the HTML view. Only
    `show_room` (the player) reads it, through the `token` property.
    """

    room: str
    identity: str
    livekit_url: str
    agent_name: str | None = None
    dispatch_id: str | None = None
    _token: str = field(default="", repr=False, compare=False)

    @property
    def token(self) -> str:
        """The user's join token, for the room player only: do not print it."""
        return self._token

    def _repr_html_(self) -> str:
        agent = (
            f"agent <code>{escape(self.agent_name)}</code> dispatched"
            if self.dispatch_id and self.agent_name
            else "no explicit agent dispatch"
        )
        return (
            f"<b>Room</b> <code>{escape(self.room)}</code> on {escape(self.livekit_url)}: "
            f"you join as <code>{escape(self.identity)}</code>; {agent}. "
            "Run <code>show_room(session)</code> to open it here."
        )


def mint_user_token(
    settings: Settings,
    room: str,
    *,
    identity: str | None = None,
    ttl: timedelta = timedelta(minutes=15),
) -> str:
    """A join token for `room` only: join, publish and subscribe, nothing else.

    No room creation, listing or admin rights, and no other room. `ttl` must be at least
    10 minutes; keep it short, since the token is embedded in the room page.
    """
    if ttl < MIN_TOKEN_TTL:
        raise ConfigError(
            f"ttl must be at least {MIN_TOKEN_TTL.total_seconds() / 60:.0f} minutes, "
            f"got {ttl.total_seconds() / 60:g}"
        )
    if not room:
        raise ConfigError("room must be a non-empty room name")
    require_livekit(settings)
    grants = api.VideoGrants(room_join=True, room=room, can_publish=True, can_subscribe=True)
    token = (
        api.AccessToken(settings.livekit_api_key, settings.livekit_api_secret.reveal())
        .with_identity(identity or f"user-{uuid.uuid4().hex[:8]}")
        .with_ttl(ttl)
        .with_grants(grants)
    )
    return token.to_jwt()


async def open_room(
    settings: Settings,
    *,
    room: str | None = None,
    agent_name: str | None = None,
    identity: str | None = None,
    ttl: timedelta = timedelta(minutes=15),
    dispatch: bool = True,
) -> RoomSession:
    """Create a fresh room, mint your join token and dispatch the agent into the room.

    `agent_name` defaults to `settings.agent_name`. With a name (and `dispatch=True`) the
    worker registered under that name is explicitly dispatched. A worker registered without
    a name is dispatched automatically by LiveKit into every new room, so nothing is sent.
    Raises `RoomError` when the server cannot be reached or refuses the key.
    """
    require_livekit(settings)
    room = room or f"stt-agent-{uuid.uuid4().hex[:8]}"
    agent_name = settings.agent_name if agent_name is None else agent_name
    identity = identity or f"user-{uuid.uuid4().hex[:8]}"
    token = mint_user_token(settings, room, identity=identity, ttl=ttl)
    url = settings.livekit_url
    dispatch_id: str | None = None
    lkapi = api.LiveKitAPI(
        url,
        settings.livekit_api_key,
        settings.livekit_api_secret.reveal(),
        timeout=aiohttp.ClientTimeout(total=_API_TIMEOUT_S),
    )
    try:
        step = "create the room"
        await lkapi.room.create_room(api.CreateRoomRequest(name=room))
        if dispatch and agent_name:
            step = f"dispatch agent {agent_name!r}"
            made = await lkapi.agent_dispatch.create_dispatch(
                api.CreateAgentDispatchRequest(agent_name=agent_name, room=room)
            )
            dispatch_id = made.id
    except api.TwirpError as e:
        if e.status in (401, 403):
            raise RoomError(
                f"the LiveKit server at {url} refused the API key/secret "
                f"(HTTP {e.status}, {scrub(e.message)}): check LIVEKIT_API_KEY and "
                "LIVEKIT_API_SECRET belong to this server"
            ) from None
        raise RoomError(
            f"could not {step} on {url}: HTTP {e.status} {e.code}: {scrub(e.message)}"
        ) from None
    except (aiohttp.ClientError, TimeoutError, OSError) as e:
        raise RoomError(
            f"cannot reach the LiveKit server at {url} to {step} "
            f"({scrub(str(e)) or type(e).__name__}): is LIVEKIT_URL right and the server up?"
        ) from None
    finally:
        await lkapi.aclose()
    return RoomSession(
        room=room,
        identity=identity,
        livekit_url=url,
        agent_name=agent_name or None,
        dispatch_id=dispatch_id,
        _token=token,
    )


def show_room(session: RoomSession, *, width: str = "100%", height: str = "110px") -> None:
    """Show LiveKit's bundled room page (`livekit.rtc.jupyter.display_room`) for `session`.

    That page joins the room with the user's microphone. It necessarily carries the join
    token inside the rendered HTML (an iframe `srcdoc`, or the page itself on Colab), so the
    token is saved with the notebook's outputs; that is why tokens are room-scoped and
    short-lived (15 minutes by default). The token is never printed as text. Clear the
    output before sharing a notebook if the token has not expired yet.
    """
    from livekit.rtc.jupyter import display_room

    display_room(session.livekit_url, session.token, width=width, height=height)


def playground_url(settings: Settings | None = None) -> str:
    """The hosted LiveKit Agents Playground, preset to microphone-in, audio-out.

    It works only with a LiveKit Cloud project: sign in there, pick the project whose
    LIVEKIT_URL you use, and the playground connects to a room where your worker is
    dispatched. A self-hosted `livekit-server --dev` needs `show_room` instead.
    """
    del settings  # the playground picks the project itself after sign-in
    return PLAYGROUND_URL + _PLAYGROUND_HASH
