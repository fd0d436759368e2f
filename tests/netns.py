"""Run a command inside a network namespace of its own: `python -m tests.netns -- CMD ...`.

Why: WebRTC (libwebrtc in `livekit.rtc`, aioice in the kit's server, Chromium) gathers ICE
candidates on every non-loopback interface and skips `lo`, so on an ordinary machine the media
tests would send their packets to the machine's own interface address. Inside the namespace
the only interfaces are `lo` and a veth pair this script makes (kit0 198.18.0.1/24 <-> kit1
198.18.0.2/24, addresses from the benchmarking range RFC 2544 sets aside), so every packet stays
inside the namespace, and the suite behaves the same on a laptop with its Wi-Fi off.

Measured here: with only `lo` up in the namespace, the Rust SDK fails to connect its peer
connection ("wait_pc_connection timed out"); with the veth pair, the media tests pass.

Inside, `STT_AGENT_TEST_NETNS=1` and `STT_AGENT_TEST_ADDRESS=198.18.0.1` are set: conftest runs
the `room_media` and `browser_media` tests only there, and tests that need a non-loopback
address (the workshop's HTTPS join link) use `STT_AGENT_TEST_ADDRESS`.

Making a namespace needs root (or user namespaces) and `unshare` and `ip` (util-linux,
iproute2). Where that fails, the command runs as it is, after one line saying the media tests
will be skipped.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

ADDRESS = "198.18.0.1"
PEER_ADDRESS = "198.18.0.2"
INSIDE = "STT_AGENT_TEST_NETNS"

# lo up, then a veth pair with one address on each end; `exec "$@"` keeps the exit status.
_SETUP = f"""set -e
ip link set lo up
ip link add kit0 type veth peer name kit1
ip addr add {ADDRESS}/24 dev kit0
ip addr add {PEER_ADDRESS}/24 dev kit1
ip link set kit0 up
ip link set kit1 up
exec "$@"
"""


def inside() -> bool:
    """True in a namespace this module made (the media tests run only there)."""
    return os.environ.get(INSIDE) == "1"


def _why_not() -> str | None:
    """Why a namespace cannot be made here, or None when it can."""
    for tool in ("unshare", "ip"):
        if shutil.which(tool) is None:
            return f"`{tool}` is not installed (apt-get install util-linux iproute2)"
    veth = ["ip", "link", "add", "kit0", "type", "veth", "peer", "name", "kit1"]
    probe = subprocess.run(
        ["unshare", "--net", "--", *veth],
        capture_output=True,
        text=True,
    )
    if probe.returncode != 0:
        first = (probe.stderr.strip().splitlines() or ["unknown error"])[0]
        return f"unshare --net failed ({first}); run as root"
    return None


def main(argv: list[str]) -> int:
    if argv[:1] == ["--"]:
        argv = argv[1:]
    if not argv:
        print("usage: python -m tests.netns -- COMMAND [ARG ...]", file=sys.stderr)
        return 2
    if inside():
        return subprocess.call(argv)
    reason = _why_not()
    if reason is not None:
        print(f"tests.netns: no network namespace: {reason}; media tests skipped", flush=True)
        return subprocess.call(argv)
    env = {**os.environ, INSIDE: "1", "STT_AGENT_TEST_ADDRESS": ADDRESS}
    command = ["unshare", "--net", "--", "sh", "-c", _SETUP, "tests.netns", *argv]
    return subprocess.call(command, env=env)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
