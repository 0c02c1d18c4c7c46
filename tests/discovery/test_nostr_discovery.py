"""Publishing and gossiping announcements through a real Nostr relay."""

from __future__ import annotations

import time
from pathlib import Path

import aiohttp
import pytest

from lobstah_core.discovery.advertiser import Advertiser, NostrChannel
from lobstah_core.discovery.gossip import gossip
from lobstah_core.discovery.merge import merge_announcements
from lobstah_core.discovery.nostr_relay import RelayClient, RelayError
from lobstah_core.protocol import Identity, UrlPolicy, sign_announcement
from lobstah_core.protocol.nostr import announcement_event, new_nostr_secret
from lobstah_core.router.peers import PeerStore

WORKER_ID = Identity.from_seed(b"\xa7" * 32)


def now_ms() -> int:
    return time.time_ns() // 1_000_000


async def models() -> list[str]:
    return ["demo-fast"]


async def test_publish_gossip_merge_and_withdraw(nostr_relay: str, tmp_path: Path) -> None:
    channel = NostrChannel([nostr_relay], new_nostr_secret(), now_ms)
    advertiser = Advertiser(WORKER_ID, [channel], "http://203.0.113.20:17474", models, now_ms, label="boat")
    await advertiser.start()
    assert advertiser.last_result == "published to 1/1 Nostr relays; reachability unknown"

    found, refused = await gossip([nostr_relay], idle=1.0, hard=10.0)
    assert refused == [] and [a["announcement"]["label"] for a in found] == ["boat"]
    store = PeerStore(tmp_path / "peers.json")
    report = await merge_announcements(found, store, "nostr", UrlPolicy(), now_ms())
    assert report.added == [WORKER_ID.pubkey]
    assert store.load()[0].source == "nostr"

    await advertiser.stop()  # NIP-09 deletion: the relay drops the announcement
    assert advertiser.last_result == "withdrawn from 1/1 Nostr relays"
    found, _ = await gossip([nostr_relay], idle=1.0, hard=10.0)
    assert found == []


async def test_forged_lobstah_signature_inside_a_valid_event_is_refused(nostr_relay: str, tmp_path: Path) -> None:
    signed = sign_announcement({"version": 1, "pubkey": WORKER_ID.pubkey, "url": "http://203.0.113.21:17474",
                                "ttlSeconds": 300, "announcedAt": now_ms()}, WORKER_ID)
    forged = signed.model_copy(update={"signature": "00" * 64})
    async with aiohttp.ClientSession() as session:
        await RelayClient(session, nostr_relay).publish(announcement_event(new_nostr_secret(), forged, now_ms() // 1000))
    found, _ = await gossip([nostr_relay], idle=1.0, hard=10.0)
    report = await merge_announcements(found, PeerStore(tmp_path / "peers.json"), "nostr", UrlPolicy(), now_ms())
    assert report.added == [] and "does not verify" in report.rejected[0][1]


async def test_unreachable_relay_is_reported() -> None:
    async with aiohttp.ClientSession() as session:
        with pytest.raises(RelayError):
            await RelayClient(session, "ws://127.0.0.1:9", hard=3).publish(
                announcement_event(new_nostr_secret(), sign_announcement(
                    {"version": 1, "pubkey": WORKER_ID.pubkey, "url": "http://203.0.113.1", "ttlSeconds": 300,
                     "announcedAt": now_ms()}, WORKER_ID), now_ms() // 1000))
    found, refused = await gossip(["ws://127.0.0.1:9"], idle=1.0, hard=3.0)
    assert found == [] and refused and refused[0][0] == "ws://127.0.0.1:9"
