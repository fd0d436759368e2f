"""The kit's LiveKit development server: LiveKit for one machine, with no account.

For learning, trying things and a small workshop without internet. LiveKit's own clients
join it unchanged: the `livekit.rtc` SDK, livekit-client in a browser (`show_room`), the
livekit-agents worker, livekit-api's `LiveKitAPI`::

    async with stt_agent.DevServer() as settings:    # 127.0.0.1, a free port, fresh keys
        handle = await stt_agent.start_agent(settings)

    python -m stt_agent server --dev                  # the same, in a terminal, on :7880

What it carries is what the kit uses: several rooms at once; participants joining,
publishing audio, subscribing and leaving; data packets and text streams (`lk.transcription`);
agent workers and dispatch; the RoomService and AgentDispatchService APIs; JWT grants checked
with LiveKit's errors. What it is not: a media server for many machines (no TURN, no STUN: host
candidates only), nor a byte-for-byte SFU (audio is decoded and re-encoded, video is accepted
but not relayed), nor resumable (a reconnecting client joins afresh).

Laid out like LiveKit's server, one job per module:

* `auth`: tokens and grants, LiveKit's refusals
* `rooms`: rooms, their participants, closing empty rooms
* `participant`: one participant's peer connections, publishing and subscribing
* `media`: forwarding audio through bounded per-subscriber queues
* `data`: data packets and text streams between participants
* `signalling`: the `/rtc` websocket (joining, pings, leaving)
* `agents`: the `/agent` worker protocol and job dispatch
* `twirp`: RoomService and AgentDispatchService
* `http`: CORS, the `Server` header, errors without tracebacks
* `network`: loopback and the interfaces media needs
* `server`: `DevServer`, which puts them together
* `command`: `python -m stt_agent server`
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .server import DEV_API_KEY, DEV_API_SECRET, DevServer, new_key_pair

__all__ = ["DEV_API_KEY", "DEV_API_SECRET", "DevServer", "new_key_pair"]


def __getattr__(name: str) -> Any:
    # Imported on first use: aiortc is needed by the server, not by `python -m stt_agent
    # server --help` or by `import stt_agent`.
    if name in __all__:
        from . import server

        return getattr(server, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
