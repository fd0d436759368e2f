"""The one settings guard of room mode: a LiveKit server, fully and validly configured.

Everything that talks to a LiveKit server from the kernel (`start_agent`, `open_room`,
`mint_user_token`) calls `require_livekit` first, so a missing or malformed setting is one
`ConfigError` naming it and its fix, before any connection is tried.
"""

from __future__ import annotations

from ..config import Settings
from ..errors import ConfigError

__all__ = ["require_livekit"]


def require_livekit(settings: Settings) -> None:
    """Raise `ConfigError` unless the three LIVEKIT_* settings are set and usable."""
    blocking = [p for p in settings.problems() if p.blocking and p.variable.startswith("LIVEKIT")]
    if not settings.has_livekit or blocking:
        reason = "; ".join(str(p) for p in blocking) or (
            "LIVEKIT_URL, LIVEKIT_API_KEY and LIVEKIT_API_SECRET are not all set "
            "(add them to .env, or run `python -m stt_agent check`)"
        )
        raise ConfigError(f"room mode needs a LiveKit server: {reason}")
