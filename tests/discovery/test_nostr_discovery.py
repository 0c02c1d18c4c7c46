"""Publishing and gossiping announcements through a real Nostr relay."""

from __future__ import annotations

import json
import time
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web

from lobstah_core.discovery.advertiser import Advertiser, NostrChannel
from lobstah_core.discovery.gossip import gossip
from lobstah_core.discovery.merge import merge_announcements
from lobstah_core.discovery.nostr_relay import RelayClient, RelayError
from lobstah_core.http import RunningServer
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


async def test_poison_events_on_a_hostile_relay_cost_only_themselves(tmp_path: Path) -> None:
    # A relay (not a real one: a real relay refuses to store these) serves honest announcement
    # events beside a 400-digit created_at, an event whose id is a number, an unreadable frame
    # and content nested 30,000 deep; once, one of them ended the whole gossip.
    honest = [announcement_event(new_nostr_secret(), sign_announcement(
        {"version": 1, "pubkey": identity.pubkey, "url": f"http://203.0.113.{n}:17474", "ttlSeconds": 300,
         "announcedAt": now_ms()}, identity), now_ms() // 1000).model_dump()
        for n, identity in ((31, Identity.from_seed(b"\xb1" * 32)), (32, Identity.from_seed(b"\xb2" * 32)))]
    poison = [{**honest[0], "created_at": 10**400}, {**honest[0], "id": 5},
              announcement_event(new_nostr_secret(), sign_announcement(
                  {"version": 1, "pubkey": WORKER_ID.pubkey, "url": "http://203.0.113.33", "ttlSeconds": 300,
                   "announcedAt": now_ms()}, WORKER_ID), now_ms() // 1000).model_copy(update={"content": "[" * 30_000}).model_dump()]

    async def relay(request: web.Request) -> web.WebSocketResponse:
        socket = web.WebSocketResponse()
        await socket.prepare(request)
        subscription = json.loads((await socket.receive()).data)[1]
        await socket.send_str(json.dumps(["EVENT", subscription, honest[0]]))
        for event in poison:
            await socket.send_str(json.dumps(["EVENT", subscription, event]))
        await socket.send_str("[" * 30_000)
        await socket.send_str(json.dumps(["EVENT", subscription, honest[1]]))
        await socket.send_str(json.dumps(["EOSE", subscription]))
        await socket.receive()
        return socket

    app = web.Application()
    app.router.add_get("/", relay)
    server = await RunningServer(app, "127.0.0.1", 0, "hostile relay").start()
    try:
        found, refused = await gossip([server.url.replace("http", "ws") + "/"], idle=1.0, hard=10.0)
    finally:
        await server.stop()
    assert [a["announcement"]["url"] for a in found] == ["http://203.0.113.31:17474", "http://203.0.113.32:17474"]
    assert len(refused) == 3
    report = await merge_announcements(found, PeerStore(tmp_path / "peers.json"), "nostr", UrlPolicy(), now_ms())
    assert len(report.added) == 2
