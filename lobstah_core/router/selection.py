"""Choosing the order in which peers are tried for one request.

Candidates are peers that are not excluded and whose cached capacity lists the model. The
node's own worker comes first while it has a free slot (issue 19), then peers
with a free slot (load below the concurrency they reported; unknown concurrency
counts as free), then peers of the fitting tier (interactive for streams, batch for jobs) — no
peer is refused for its tier — then the least loaded (our in-flight calls plus the queue depth
it reported); ties rotate so equal peers share the work.

Ranking reads only plain cached values (:class:`PeerHealth`), so it is tested without sockets.
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
    if count < 2:
        return list(candidates)  # nothing to order (a grid of one peer for the model)

    def key(item: tuple[int, Peer]) -> tuple[bool, bool, bool, int, int]:
        index, peer = item
        state = health[peer.pubkey]
        capacity = state.capacity
        tier = capacity.tier if capacity else None
        full = bool(capacity and capacity.concurrency and state.load >= capacity.concurrency)
        # A node serves itself first while its own worker has a free slot (issue 19).
        own_and_free = peer.source == "self" and state.load < ((capacity.concurrency if capacity else None) or 1)
        return (not own_and_free, full, bool(preferred_tier) and tier != preferred_tier, state.load, (index - rotation) % count)

    return [peer for _, peer in sorted(enumerate(candidates), key=key)]
