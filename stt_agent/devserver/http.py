"""The HTTP side every request passes through: CORS, the `Server` header, and errors.

* CORS as LiveKit's server sends it (``rs/cors`` with every origin allowed, since the token is
  what authorises): a page on another origin, such as `show_room`'s page or the Agents
  Playground, may call `/rtc/validate` and the Twirp APIs. Preflights get 204.
* ``Server: stt-agent-devserver/<version>`` on every answer, so `check` and other probes can
  tell the kit's server from LiveKit's.
* No traceback ever reaches the log: a handler that fails unexpectedly is one line and a 500;
  an HTTP request aiohttp cannot parse is one line naming the kind of error (never its text,
  which could quote a token from the request line).
* No access log: `/rtc` and `/agent` requests carry tokens in their URL or headers.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Awaitable, Callable, Iterable, MutableMapping
from typing import Any

from aiohttp import web

__all__ = ["SERVER_NAME", "SERVER_PRODUCT", "build_app", "quiet_logger"]

logger = logging.getLogger("stt_agent.devserver")

SERVER_PRODUCT = "stt-agent-devserver"  # what probes look for in the `Server` header
SERVER_NAME = f"{SERVER_PRODUCT}/1.0"
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
PREFLIGHT_MAX_AGE_S = "86400"  # LiveKit lets browsers cache a preflight for a day


@web.middleware
async def _preflight_and_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    origin = request.headers.get("Origin")
    wanted = request.headers.get("Access-Control-Request-Method")
    if request.method == "OPTIONS" and origin and wanted:
        headers = {
            "Access-Control-Allow-Origin": origin,
            "Access-Control-Allow-Methods": wanted.upper(),
            "Access-Control-Max-Age": PREFLIGHT_MAX_AGE_S,
            "Vary": "Origin, Access-Control-Request-Method, Access-Control-Request-Headers",
        }
        if asked := request.headers.get("Access-Control-Request-Headers"):
            headers["Access-Control-Allow-Headers"] = asked
        return web.Response(status=204, headers=headers)
    try:
        return await handler(request)
    except web.HTTPException:
        raise
    except Exception as e:
        logger.error("%s %s failed (%s)", request.method, request.path, type(e).__name__)
        return web.Response(status=500, text="internal error")


async def _headers(request: web.Request, response: web.StreamResponse) -> None:
    response.headers["Server"] = SERVER_NAME
    origin = request.headers.get("Origin")
    if origin and "Access-Control-Allow-Origin" not in response.headers:
        response.headers["Access-Control-Allow-Origin"] = origin
        response.headers.add("Vary", "Origin")


async def _root(request: web.Request) -> web.Response:
    return web.Response(text="OK")  # what LiveKit's server answers on /, for health checks


def build_app(routes: Iterable[web.RouteDef], middlewares: Iterable[Any] = ()) -> web.Application:
    app = web.Application(middlewares=[_preflight_and_errors, *middlewares])
    app.router.add_get("/", _root)
    app.add_routes(list(routes))
    app.on_response_prepare.append(_headers)
    return app


class _OneLine(logging.LoggerAdapter):  # type: ignore[type-arg]
    """aiohttp's server logger, without tracebacks: a client's malformed request is its
    problem, one warning line names it."""

    def log(self, level: int, msg: object, *args: Any, **kwargs: Any) -> None:
        exc_info = kwargs.pop("exc_info", None)
        if exc_info:
            exc = exc_info if isinstance(exc_info, BaseException) else sys.exc_info()[1]
            if exc is not None:
                msg = f"{msg} ({type(exc).__name__})"
            level = min(level, logging.WARNING)
        kwargs.pop("stack_info", None)
        super().log(level, msg, *args, **kwargs)

    def process(
        self, msg: Any, kwargs: MutableMapping[str, Any]
    ) -> tuple[Any, MutableMapping[str, Any]]:
        return msg, kwargs


def quiet_logger() -> logging.Logger:
    """The logger to give aiohttp's request handling (AppRunner's `logger`)."""
    adapter = _OneLine(logging.getLogger("stt_agent.devserver.http"), {})
    return adapter  # type: ignore[return-value]  # aiohttp only calls log methods on it
