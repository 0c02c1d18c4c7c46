"""Choosing the order in which peers are tried for one request.

Candidates are peers that are not excluded and whose cached capacity lists the model. Peers of
the fitting tier come first (interactive for streams, batch for jobs) but no peer is refused for
its tier; then the least loaded (our in-flight calls plus the queue depth it reported); ties
rotate so equal peers share the work.
"""

from __future__ import annotations

from collections.abc import Sequence

from .health import PeerHealth
from .peers import Peer

__all__ = ["rank"]


def rank(
    candidates: Sequence[Peer],
    health: dict[str, PeerHealth],
    preferred_tier: str | None,
    rotation: int,
) -> list[Peer]:
    """``candidates`` in the order to try them.

    Args:
        candidates: capable, non-excluded peers.
        health: cached state by pubkey.
        preferred_tier: the tier that fits the request, if any.
        rotation: a counter advanced per request, to rotate ties.
    """
    count = len(candidates)

    def key(item: tuple[int, Peer]) -> tuple[bool, int, int, int]:
        index, peer = item
        state = health[peer.pubkey]
        tier = state.capacity.tier if state.capacity else None
        # A node serves itself first while its own worker has a free slot (issue 19).
        slots = (state.capacity.concurrency if state.capacity else None) or 1
        own_and_free = peer.source == "self" and state.load < slots
        return (not own_and_free, tier != preferred_tier if preferred_tier else 0, state.load, (index - rotation) % count)

    return [peer for _, peer in sorted(enumerate(candidates), key=key)]
