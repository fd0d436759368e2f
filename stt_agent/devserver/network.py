"""What the machine's network allows: loopback addresses, and whether media can flow.

Measured on these machines (see the README): the real `livekit.rtc` client (libwebrtc) never
connects its peer connections when `lo` is the only interface up ("wait_pc_connection timed
out", then `Room.connect` fails), because neither libwebrtc nor aioice (the server's ICE)
gathers candidates on loopback; with another interface up and holding an address (Wi-Fi,
Ethernet, or even a veth pair with no route anywhere) media flows, over that address, which
never leaves the machine.
"""

from __future__ import annotations

import ipaddress
import socket

import psutil

__all__ = ["is_loopback", "lan_addresses", "media_interfaces"]


def is_loopback(host: str) -> bool:
    """True for 127.0.0.0/8, ::1 and `localhost`; False for 0.0.0.0 (every address)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _up() -> set[str]:
    return {name for name, stats in psutil.net_if_stats().items() if stats.isup}


def media_interfaces() -> list[str]:
    """Interfaces that are up and hold a non-loopback IPv4 address: where libwebrtc gathers
    the candidates media needs."""
    up = _up()
    found = []
    for name, addresses in psutil.net_if_addrs().items():
        if name not in up:
            continue
        for a in addresses:
            if a.family == socket.AF_INET and not ipaddress.ip_address(a.address).is_loopback:
                found.append(name)
                break
    return sorted(found)


def lan_addresses() -> list[str]:
    """The machine's non-loopback IPv4 addresses on interfaces that are up."""
    up = _up()
    return sorted(
        a.address
        for name, addresses in psutil.net_if_addrs().items()
        if name in up
        for a in addresses
        if a.family == socket.AF_INET and not ipaddress.ip_address(a.address).is_loopback
    )
