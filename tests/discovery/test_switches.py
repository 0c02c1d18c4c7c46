"""The advertise and sync switches as library calls: off by default, state and last result."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from lobstah_core.discovery.advertiser import Advertiser, NostrChannel, TrackerChannel
from lobstah_core.discovery.periodic_sync import PeriodicSync
from lobstah_core.http import RunningServer
from lobstah_core.protocol import Identity, UrlPolicy
from lobstah_core.protocol.nostr import new_nostr_secret
from lobstah_core.router.peers import PeerStore
from lobstah_core.tracker import create_app as create_tracker

WORKER_ID = Identity.from_seed(b"\xb7" * 32)


def now_ms() -> int:
    return time.time_ns() // 1_000_000


async def models() -> list[str]:
    return ["demo-fast"]


@pytest.fixture
async def tracker() -> AsyncIterator[RunningServer]:
    server = await RunningServer(create_tracker(), "127.0.0.1", 0, "tracker").start()
    yield server
    await server.stop()


async def test_switches_flip_and_report(tracker: RunningServer, nostr_relay: str, tmp_path: Path) -> None:
    channels = [TrackerChannel(tracker.url, WORKER_ID, now_ms), NostrChannel([nostr_relay], new_nostr_secret(), now_ms)]
    advertise = Advertiser(WORKER_ID, channels, "http://203.0.113.30:17474", models, now_ms)
    store = PeerStore(tmp_path / "peers.json")
    sync = PeriodicSync(store, UrlPolicy(), now_ms, trackers=[tracker.url], relays=[nostr_relay], interval=0.2, gossip_idle=0.5)
    assert (advertise.running, advertise.last_result) == (False, "not started")
    assert (sync.running, sync.last_result) == (False, "off")

    await advertise.start()
    assert advertise.running and "announced to" in advertise.last_result and "1/1 Nostr" in advertise.last_result
    sync.start()
    for _ in range(100):
        if sync.last_report is not None:
            break
        await asyncio.sleep(0.05)
    assert sync.running and sync.last_result.startswith("added 1")
    assert [p.pubkey for p in store.load()] == [WORKER_ID.pubkey]

    await sync.stop()
    assert not sync.running and sync.last_result.startswith("off")
    await advertise.stop()
    assert not advertise.running and "withdrawn from" in advertise.last_result


async def test_sync_reports_unreachable_sources(tmp_path: Path) -> None:
    sync = PeriodicSync(PeerStore(tmp_path / "peers.json"), UrlPolicy(), now_ms, trackers=["http://127.0.0.1:9"])
    report = await sync.run_once()
    assert report.added == [] and "cannot reach tracker" in report.rejected[0][1]
    assert sync.last_result == "added 0, refreshed 0, rejected 1"
