"""[ext] reachability: can anyone call the URL a worker announced? (WIRE.md "[ext] reachability")

After verifying an announcement, our tracker calls the announced URL's ``/pubkey`` and tells the
worker in its answer, so an operator behind NAT learns that the URL they advertise reaches
nobody. The URL passes URL safety first: the tracker never calls what a router would refuse.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import aiohttp

from ..errors import UnsafeUrl
from ..protocol.url_safety import UrlPolicy, check_peer_url, peer_url_host
from ..resolve import resolve_host

__all__ = ["Reachability", "check_reachability", "CHECK_TIMEOUT_S"]

#: WIRE.md: the tracker waits 3 s for the announced URL to answer.
CHECK_TIMEOUT_S = 3.0


@dataclass(frozen=True)
class Reachability:
    """The outcome: ``reachable``, and when not, ``reason`` (one line for the operator)."""

    reachable: bool
    reason: str | None = None

    def to_wire(self) -> dict[str, object]:
        """The fields added to the ``POST /announce`` answer."""
        return {"reachable": True} if self.reachable else {"reachable": False, "reachability": self.reason}


async def check_reachability(
    session: aiohttp.ClientSession,
    url: str,
    pubkey: str,
    policy: UrlPolicy,
    resolve: Callable[[str], Awaitable[list[str]]] = resolve_host,
) -> Reachability:
    """Call ``url``/pubkey and check that the worker ``pubkey`` answers there.

    Never raises: every failure is a reason (refused by URL safety, no answer in 3 s, refused
    connection, another key or not a Lobstah worker).
    """
    try:
        check_peer_url(url, await resolve(peer_url_host(url)), policy)
    except UnsafeUrl as exc:
        return Reachability(False, f"peers would refuse this URL: {exc.message}")
    try:
        timeout = aiohttp.ClientTimeout(total=CHECK_TIMEOUT_S)
        async with session.get(url.rstrip("/") + "/pubkey", timeout=timeout, allow_redirects=False) as response:
            body = await response.json(content_type=None) if response.status == 200 else None
    except asyncio.TimeoutError:
        return Reachability(False, f"no answer from {url} within {CHECK_TIMEOUT_S:.0f} s")
    except aiohttp.ClientError as exc:
        return Reachability(False, f"cannot connect to {url} ({type(exc).__name__})")
    except ValueError:
        body = None
    answered = body.get("pubkey") if isinstance(body, dict) else None
    if answered is None:
        return Reachability(False, f"{url} does not answer as a Lobstah worker")
    if answered != pubkey:
        return Reachability(False, f"{url} answers with another key ({str(answered)[:16]}…)")
    return Reachability(True)
