"""Name resolution for URL safety: the addresses a peer's host points at right now."""

from __future__ import annotations

import asyncio
import socket

__all__ = ["resolve_host"]


async def resolve_host(host: str) -> list[str]:
    """The IP addresses ``host`` resolves to (an IP literal resolves to itself; none on failure)."""
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(host, None, type=socket.SOCK_STREAM)
    except OSError:
        return []
    return sorted({info[4][0] for info in infos})
