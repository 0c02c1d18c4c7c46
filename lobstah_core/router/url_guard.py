"""The request-time URL check of discovered peers (WIRE.md "URL safety").

A discovered peer's URL was checked when it was merged, but DNS may point its name elsewhere
since (rebinding), so every call to such a peer checks the addresses again. Peers the operator
added by hand, and the node's own worker, are trusted as written (they may be loopback).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from ..protocol.url_safety import UrlPolicy, check_peer_url, peer_url_host
from ..resolve import resolve_host
from .peers import Peer

__all__ = ["PeerUrlGuard"]


class PeerUrlGuard:
    """Checks a peer's URL against ``policy`` on the addresses its host resolves to now."""

    def __init__(
        self, policy: UrlPolicy | None = None, resolve: Callable[[str], Awaitable[list[str]]] = resolve_host
    ) -> None:
        self.policy = policy or UrlPolicy()
        self._resolve = resolve

    @staticmethod
    def needs_check(peer: Peer) -> bool:
        """Whether ``peer`` was discovered (its URL is checked at each call); peers added by
        hand and the node's own worker are trusted as written."""
        return peer.source in ("tracker", "nostr")

    async def check(self, peer: Peer) -> None:
        """Return if ``peer`` may be called now.

        Raises:
            UnsafeUrl: a discovered peer whose URL or resolved addresses are refused.
        """
        if self.needs_check(peer):
            check_peer_url(peer.url, await self._resolve(peer_url_host(peer.url)), self.policy)
