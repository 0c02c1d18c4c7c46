"""Merging discovered announcements into the peer list, safely.

Every announcement is verified (signature, freshness), the newest per pubkey wins, and its URL
must pass the URL-safety policy on the addresses its host resolves to. Discovered peers carry
their source and expiry; a peer the operator added by hand is never replaced by a discovered one.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from ..errors import ProtocolError
from ..protocol.announcements import (
    SignedAnnouncement,
    announcement_status,
    verify_announcement,
)
from ..protocol.url_safety import UrlPolicy, check_peer_url, peer_url_host
from ..resolve import resolve_host
from ..router.peers import Peer, PeerSource, PeerStore

__all__ = ["SyncReport", "merge_announcements"]

Resolver = Callable[[str], Awaitable[list[str]]]


@dataclass
class SyncReport:
    """What a sync did: pubkeys added and refreshed, and what was refused and why."""

    added: list[str] = field(default_factory=list)
    refreshed: list[str] = field(default_factory=list)
    rejected: list[tuple[str, str]] = field(default_factory=list)


async def merge_announcements(
    raw: Iterable[Any],
    store: PeerStore,
    source: PeerSource,
    policy: UrlPolicy,
    now_ms: int,
    resolve: Resolver = resolve_host,
) -> SyncReport:
    """Verify ``raw`` signed announcements and merge the good ones into ``store``."""
    report = SyncReport()
    newest: dict[str, SignedAnnouncement] = {}
    for item in raw:
        try:
            signed = verify_announcement(item)
        except ProtocolError as exc:
            report.rejected.append((_who(item), exc.message))
            continue
        announcement = signed.announcement
        status = announcement_status(announcement, now_ms)
        if status != "ok":
            report.rejected.append((announcement.pubkey, f"announcement is {status}"))
            continue
        known = newest.get(announcement.pubkey)
        if known is None or known.announcement.announced_at < announcement.announced_at:
            newest[announcement.pubkey] = signed

    peers = {peer.pubkey: peer for peer in store.load()}
    for pubkey, signed in newest.items():
        announcement = signed.announcement
        try:
            check_peer_url(announcement.url, await resolve(peer_url_host(announcement.url)), policy)
        except ProtocolError as exc:
            report.rejected.append((pubkey, exc.message))
            continue
        existing = peers.get(pubkey)
        if existing is not None and existing.source == "manual":
            report.rejected.append((pubkey, "already added by hand; the manual entry is kept"))
            continue
        peers[pubkey] = Peer(pubkey=pubkey, url=announcement.url, label=announcement.label,
                             source=source, expires_at=announcement.expires_at())
        (report.refreshed if existing is not None else report.added).append(pubkey)
    if report.added or report.refreshed:
        store.save([peer for peer in peers.values() if not peer.expired(now_ms)])
    return report


def _who(item: Any) -> str:
    try:
        return str(item["announcement"]["pubkey"])[:80]
    except (TypeError, KeyError):
        return "?"
