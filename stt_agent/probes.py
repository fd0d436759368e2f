"""Short, safe reachability checks of the LiveKit server and AssemblyAI for `check`.

Every verdict is a sentence a newcomer can act on. Nothing here ever puts a key, a secret or
a token into a message: client exceptions can carry request headers, so only their class
and HTTP status are used.
"""

from __future__ import annotations

import asyncio
import warnings
from dataclasses import dataclass
from urllib.parse import urlparse, urlunparse

import aiohttp
from jwt.warnings import InsecureKeyLengthWarning

from .config import Settings

__all__ = ["ProbeResult", "is_kit_server", "probe_assemblyai", "probe_livekit"]

DEFAULT_TIMEOUT_S = 5.0


@dataclass(frozen=True)
class ProbeResult:
    service: str
    ok: bool
    message: str
    configured: bool = True  # False: nothing to probe, which is fine (local mode, local engine)

    def __str__(self) -> str:
        return f"{'ok  ' if self.ok else 'FAIL'} {self.service}: {self.message}"


def _first_problem(settings: Settings, *prefixes: str) -> str | None:
    """The first variable the probe needs that has a problem: asking with it proves nothing."""
    return next((p.variable for p in settings.problems() if p.variable.startswith(prefixes)), None)


def _http_url(url: str) -> str:
    parts = urlparse(url)
    scheme = {"ws": "http", "wss": "https"}.get(parts.scheme, parts.scheme)
    return urlunparse(parts._replace(scheme=scheme))


async def probe_livekit(settings: Settings, timeout_s: float = DEFAULT_TIMEOUT_S) -> ProbeResult:
    """List rooms with the configured key: proves the URL, the key and the secret at once."""
    from livekit import api

    service = "LiveKit server"
    if not settings.has_livekit:
        return ProbeResult(service, False, "not configured (local mode needs no server)", False)
    if blocked := _first_problem(settings, "LIVEKIT_"):
        return ProbeResult(service, False, f"not tried: {blocked} has to be fixed first")
    url = _http_url(settings.livekit_url)
    try:
        with warnings.catch_warnings():
            # `livekit-server --dev`'s secret is the word "secret": PyJWT's key-length advice
            # is right for production keys and only noise for the dev server.
            warnings.simplefilter("ignore", InsecureKeyLengthWarning)
            async with api.LiveKitAPI(
                url, settings.livekit_api_key, settings.livekit_api_secret.reveal()
            ) as lk:
                request = lk.room.list_rooms(api.ListRoomsRequest())
                rooms = await asyncio.wait_for(request, timeout_s)
    except TimeoutError:
        return ProbeResult(
            service, False, f"no answer from {url} within {timeout_s:g} s: is the server running?"
        )
    except api.TwirpError as e:
        if e.status in (401, 403) or e.code in ("unauthenticated", "permission_denied"):
            return ProbeResult(
                service,
                False,
                f"{url} refused the API key/secret (HTTP {e.status}): copy both again from "
                "the same key in your LiveKit project",
            )
        return ProbeResult(
            service, False, f"{url} answered with an error ({e.code}, HTTP {e.status})"
        )
    except (aiohttp.ClientError, OSError, ValueError) as e:
        # ValueError: what aiohttp and urllib raise for an address they cannot use at all
        return ProbeResult(
            service,
            False,
            f"cannot reach {url} ({type(e).__name__}): check LIVEKIT_URL and network",
        )
    which = "; the kit's development server" if await is_kit_server(url, timeout_s) else ""
    return ProbeResult(
        service, True, f"{url} accepted the credentials ({len(rooms.rooms)} rooms{which})"
    )


async def is_kit_server(url: str, timeout_s: float = DEFAULT_TIMEOUT_S) -> bool:
    """Whether the LiveKit server at `url` is the kit's own (`python -m stt_agent server`):
    it names itself in the `Server` header of every answer."""
    from .devserver.http import SERVER_PRODUCT

    try:
        async with (
            aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=timeout_s)) as http,
            http.get(_http_url(url).rstrip("/") + "/") as response,
        ):
            return response.headers.get("Server", "").startswith(SERVER_PRODUCT)
    except (aiohttp.ClientError, OSError, ValueError, TimeoutError):
        return False


async def probe_assemblyai(settings: Settings, timeout_s: float = DEFAULT_TIMEOUT_S) -> ProbeResult:
    """Ask AssemblyAI for a short-lived streaming token: 200 means the key is good."""
    service = "AssemblyAI"
    if not settings.assemblyai_api_key:
        message = "no ASSEMBLYAI_API_KEY (the local engine is used)"
        return ProbeResult(service, False, message, False)
    if blocked := _first_problem(settings, "ASSEMBLYAI_API_KEY", "ASSEMBLYAI_BASE_URL"):
        return ProbeResult(service, False, f"not tried: {blocked} has to be fixed first")
    headers = {"Authorization": settings.assemblyai_api_key.reveal()}
    url = settings.assemblyai_base_url
    try:
        url = _http_url(url).rstrip("/") + "/v3/token"
        async with (
            aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=timeout_s)) as http,
            http.get(url, params={"expires_in_seconds": "60"}, headers=headers) as response,
        ):
            status = response.status
    except TimeoutError:
        return ProbeResult(service, False, f"no answer from {url} within {timeout_s:g} s")
    except (aiohttp.ClientError, OSError, ValueError) as e:
        # ValueError: what aiohttp and urllib raise for an address they cannot use at all
        return ProbeResult(
            service, False, f"cannot reach {url} ({type(e).__name__}): check ASSEMBLYAI_BASE_URL"
        )
    if status == 200:
        return ProbeResult(service, True, "the API key is valid")
    if status in (401, 403):
        return ProbeResult(
            service,
            False,
            f"the API key was rejected (HTTP {status}): copy it again from your AssemblyAI "
            "dashboard",
        )
    return ProbeResult(service, False, f"{url} answered HTTP {status}")


async def usable_engine(
    settings: Settings, timeout_s: float = DEFAULT_TIMEOUT_S
) -> tuple[str, str]:
    """The engine to use now and why: the configured one if it answers, else the local one.

    For notebooks and workshops: a key that is wrong, or a network that is down, should mean
    "transcribe locally and say why", not a failed cell.
    """
    if settings.engine == "local":
        return "local", "Using the local engine (no AssemblyAI key configured)."
    result = await probe_assemblyai(settings, timeout_s)
    if result.ok:
        return "assemblyai", "Using AssemblyAI (the key is valid)."
    return (
        "local",
        f"AssemblyAI is configured but not usable ({result.message}); "
        "using the local engine instead.",
    )
