"""`python -m stt_agent server`: the kit's LiveKit server in the foreground, like
`livekit-server --dev`.

    python -m stt_agent server --dev                    # 127.0.0.1:7880, devkey / secret
    python -m stt_agent server --env-file .env          # fresh keys, written to .env (0600)
    python -m stt_agent server --host 0.0.0.0 --env-file .env   # others on the LAN may join

Prints one line containing `ready` and the URL once it listens, then one line per join,
publish and leave (on stderr). Ctrl-C: one line, exit 0. A secret is never printed, except
LiveKit's well-known dev one.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from ..envfile import write_env_file
from ..errors import ConfigError
from .auth import DEV_API_KEY, DEV_API_SECRET
from .network import is_loopback, lan_addresses

if TYPE_CHECKING:
    from .server import DevServer

__all__ = ["add_arguments", "run"]

DEFAULT_PORT = 7880  # LiveKit's
EXIT_FAILED, EXIT_BAD_INPUT = 1, 2


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, help="default: 7880, as LiveKit")
    parser.add_argument(
        "--host",
        default="127.0.0.1",
        help="address to listen on (default 127.0.0.1: this machine only; 0.0.0.0: the LAN too)",
    )
    parser.add_argument(
        "--dev",
        action="store_true",
        help="LiveKit's well-known dev keys devkey / secret (127.0.0.1 only)",
    )
    parser.add_argument(
        "--env-file",
        type=Path,
        help="write LIVEKIT_URL, LIVEKIT_API_KEY and LIVEKIT_API_SECRET for this server here "
        "(mode 0600), where `python -m stt_agent dev` and the notebooks find them",
    )


def _public_url(server: DevServer) -> str:
    """The URL for other machines: the LAN address when listening on every address."""
    if server.host in ("0.0.0.0", "::", ""):
        addresses = lan_addresses()
        if addresses:
            return f"ws://{addresses[0]}:{server.port}"
    return server.url


def _configure_logging() -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(message)s", "%H:%M:%S"))
    log = logging.getLogger("stt_agent.devserver")
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    log.propagate = False
    # aiortc and aioice report every ICE and DTLS hiccup; the server's own lines say enough
    for noisy in ("aiortc", "aioice", "aiohttp"):
        logging.getLogger(noisy).setLevel(logging.ERROR)


def run(args: argparse.Namespace) -> int:
    if args.dev and not is_loopback(args.host):
        print(
            f"stt-agent: server: --dev is for 127.0.0.1 only, not {args.host}: everyone knows the "
            "dev keys; leave out --dev for a key pair of your own (--env-file writes it)",
            file=sys.stderr,
        )
        return EXIT_BAD_INPUT
    if not 0 <= args.port <= 65535:
        print(f"stt-agent: server: --port {args.port} is not a port (0-65535)", file=sys.stderr)
        return EXIT_BAD_INPUT
    from .server import DevServer

    _configure_logging()
    key, secret = (DEV_API_KEY, DEV_API_SECRET) if args.dev else (None, None)
    try:
        server = DevServer(args.host, args.port, api_key=key, api_secret=secret)
    except ConfigError as e:
        print(f"stt-agent: server: {e}", file=sys.stderr)
        return EXIT_BAD_INPUT
    try:
        asyncio.run(_serve(server, args))
    except ConfigError as e:
        print(f"stt-agent: server: {e}", file=sys.stderr)
        return EXIT_FAILED
    except KeyboardInterrupt:  # a second Ctrl-C while stopping
        pass
    print("stt-agent server: stopped", flush=True)
    return 0


async def _serve(server: DevServer, args: argparse.Namespace) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    await server.start()
    try:
        url = _public_url(server)
        which = "LiveKit's dev keys devkey / secret" if args.dev else f"API key {server.api_key}"
        print(f"stt-agent server ready on {url} ({which})", flush=True)
        if args.env_file is not None:
            write_env_file(
                args.env_file,
                {
                    "LIVEKIT_URL": url,
                    "LIVEKIT_API_KEY": server.api_key,
                    "LIVEKIT_API_SECRET": server.keys.reveal_secret(),
                },
            )
            print(f"LIVEKIT_URL, LIVEKIT_API_KEY and LIVEKIT_API_SECRET written to {args.env_file}")
        elif args.dev:
            # `dev`, `start` and `connect` with no settings look for it on LiveKit's port
            found = "finds this server by itself" if server.port == DEFAULT_PORT else "needs"
            print(
                f"in another terminal, `python -m stt_agent dev` {found}: "
                f"LIVEKIT_URL={server.url} LIVEKIT_API_KEY={DEV_API_KEY} "
                f"LIVEKIT_API_SECRET={DEV_API_SECRET}"
            )
        else:
            print(
                "the secret of this fresh key pair is not shown: stop and start again with "
                "--env-file .env to store it where the kit finds it, or use --dev"
            )
        if not is_loopback(server.host):
            print(
                f"anyone who can reach {url} on your network and holds a token signed with this "
                "key pair can join its rooms"
            )
        sys.stdout.flush()
        await stop.wait()
    finally:
        await server.stop()
