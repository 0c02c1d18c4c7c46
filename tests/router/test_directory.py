"""The peer directory's background probes: a peer that keeps failing is asked ever less often."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from lobstah_core.events import EventBus, PeerFailed
from lobstah_core.protocol import Identity
from lobstah_core.router.directory import PROBE_BACKOFF_MAX_S, PeerDirectory
from lobstah_core.router.health import HealthBook
from lobstah_core.router.memory import MemoryRequest, MemoryResponse, MemoryTransport
from lobstah_core.router.peers import Peer, PeerStore
from lobstah_core.router.transport import PeerUnreachable

PEER = Identity.from_seed(b"\x61" * 32)
INTERVAL_S = 15.0


class Flaky:
    """A peer that is down until ``up`` is set; counts the probes it got."""

    def __init__(self) -> None:
        self.up, self.probes = False, 0

    async def __call__(self, request: MemoryRequest) -> MemoryResponse:
        self.probes += 1
        if not self.up:
            raise PeerUnreachable("cannot connect (Connection refused)")
        return MemoryResponse(200, json.dumps({"pubkey": PEER.pubkey, "models": ["m"], "queueDepth": 0}).encode())


def directory(tmp_path: Path, peer: Flaky, now: list[int]) -> tuple[PeerDirectory, list[object]]:
    bus, published = EventBus(), []
    bus.publish = published.append  # type: ignore[method-assign]
    store = PeerStore(tmp_path / "peers.json")
    store.save([Peer(pubkey=PEER.pubkey, url="http://peer")])
    health = HealthBook(bus, lambda: now[0])
    found = PeerDirectory(store, health, MemoryTransport({"http://peer": peer}), bus, lambda: now[0], interval=INTERVAL_S)
    found.reload()
    return found, published


async def rounds(found: PeerDirectory, now: list[int], seconds: float) -> None:
    """The background loop's rounds, one every INTERVAL_S, over ``seconds`` of clock time."""
    for _ in range(int(seconds / INTERVAL_S)):
        await found.refresh(back_off=True)
        now[0] += int(INTERVAL_S * 1000)


async def test_a_peer_that_stays_down_is_probed_ever_less_often(tmp_path: Path) -> None:
    now, peer = [1_000_000], Flaky()
    found, published = directory(tmp_path, peer, now)
    await rounds(found, now, 600)  # ten minutes: 40 rounds
    # At 0, 15, 45, 105 s, then every 120 s: 225, 345, 465, 585.
    assert peer.probes == 8
    assert sum(isinstance(event, PeerFailed) for event in published) == 8  # and as few events


async def test_a_peer_that_comes_back_is_noticed_within_the_longest_wait(tmp_path: Path) -> None:
    now, peer = [1_000_000], Flaky()
    found, _ = directory(tmp_path, peer, now)
    await rounds(found, now, 600)
    peer.up = True
    await rounds(found, now, PROBE_BACKOFF_MAX_S + INTERVAL_S)
    assert found.capable("m") == [found.peers[PEER.pubkey]]
    probes = peer.probes
    await rounds(found, now, 60)  # healthy again: probed every round
    assert peer.probes == probes + 4


async def test_an_explicit_refresh_asks_every_peer_whatever_its_past(tmp_path: Path) -> None:
    now, peer = [1_000_000], Flaky()
    found, _ = directory(tmp_path, peer, now)
    await rounds(found, now, 600)
    probes = peer.probes
    await found.refresh()
    assert peer.probes == probes + 1


async def test_a_round_that_fails_does_not_end_the_background_loop(tmp_path: Path) -> None:
    now, peer = [1_000_000], Flaky()
    found, _ = directory(tmp_path, peer, now)
    found.tick_s = 0.01
    rounds_seen = []
    real_sweep = found.health.sweep

    def sweep() -> None:  # the first round breaks in an unforeseen way
        rounds_seen.append(1)
        if len(rounds_seen) == 1:
            raise RuntimeError("something nobody thought of")
        real_sweep()

    found.health.sweep = sweep  # type: ignore[method-assign]
    loop = asyncio.create_task(found.run())
    try:
        for _ in range(200):
            if len(rounds_seen) >= 3:
                break
            await asyncio.sleep(0.01)
        assert len(rounds_seen) >= 3 and not loop.done()
    finally:
        loop.cancel()
        await found.close()
