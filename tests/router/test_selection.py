"""Ranking peers from cached state alone: free slots, tier, load, rotation (no sockets)."""

from __future__ import annotations

from lobstah_core.protocol import Identity
from lobstah_core.protocol.schemas import Capacity
from lobstah_core.router.health import PeerHealth
from lobstah_core.router.peers import Peer
from lobstah_core.router.selection import rank

KEYS = [Identity.from_seed(bytes([70 + i]) * 32).pubkey for i in range(3)]


def peers_with(*states: tuple[str, int, int, int | None]) -> tuple[list[Peer], dict[str, PeerHealth]]:
    """(tier, in_flight, queue_depth, concurrency) per peer, labelled A, B, C."""
    peers, health = [], {}
    for key, label, (tier, in_flight, queue, concurrency) in zip(KEYS, "ABC", states):
        peers.append(Peer(pubkey=key, url=f"http://{label}", label=label))
        capacity = Capacity(pubkey=key, models=["m"], queue_depth=queue, tier=tier, concurrency=concurrency)
        health[key] = PeerHealth(in_flight=in_flight, capacity=capacity)
    return peers, health


def order(peers: list[Peer], health: dict[str, PeerHealth], tier: str | None, rotation: int = 0) -> str:
    return "".join(p.label or "" for p in rank(peers, health, tier, rotation))


def test_the_fitting_tier_comes_first_then_the_least_loaded() -> None:
    peers, health = peers_with(("batch", 0, 0, 4), ("interactive", 1, 0, 4), ("interactive", 0, 0, 4))
    assert order(peers, health, "interactive") == "CBA"
    assert order(peers, health, "batch") == "ACB"
    assert order(peers, health, None) == "ACB"


def test_a_full_peer_goes_after_any_peer_with_a_free_slot() -> None:
    # B fits the tier but its two slots are taken (one call of ours, one queued elsewhere).
    peers, health = peers_with(("batch", 0, 3, 4), ("interactive", 1, 1, 2), ("best-effort", 0, 0, None))
    assert order(peers, health, "interactive") == "CAB"


def test_equal_peers_take_turns() -> None:
    peers, health = peers_with(("batch", 0, 0, 2), ("batch", 0, 0, 2), ("batch", 0, 0, 2))
    assert [order(peers, health, None, turn)[0] for turn in range(6)] == list("ABCABC")
