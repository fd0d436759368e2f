"""The kit's exceptions: one root, so a caller can catch everything the kit raises on purpose.

Every message names the file, setting, service or room involved and says what to do; none holds
a secret. Each class also keeps the built-in base callers caught before the root existed
(`ValueError` for bad settings, `RuntimeError` for services), so old `except` clauses still work.
"""

from __future__ import annotations


class SttAgentError(Exception):
    """Root of every error the kit raises on purpose."""


class ConfigError(SttAgentError, ValueError):
    """A setting or argument cannot be used (a missing server, an unknown engine name)."""


class AudioSourceError(SttAgentError):
    """A file or device that cannot be used, with a message that names it and says what is wrong."""

    def __init__(self, source: str, problem: str) -> None:
        super().__init__(f"{source}: {problem}")
        self.source = source
        self.problem = problem


class EngineError(SttAgentError, RuntimeError):
    """The speech engine failed for good (a refused key, an endpoint that stopped answering)."""


class StalledError(EngineError):
    """The engine stopped answering during one source. The next source gets a stream of its
    own, so a batch goes on with its other files (a refused key, by contrast, would not)."""


class ModelError(EngineError):
    """The local model cannot be loaded; the message says why and what to do."""


class RoomError(SttAgentError, RuntimeError):
    """A LiveKit server could not be reached, refused a request, or a room could not be joined."""
