"""Workers advertise on a real tracker; routers sync, verify, apply URL safety and serve."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import httpx
import pytest
from aiohttp import web

from lobstah_core.discovery.advertiser import Advertiser, TrackerChannel, heartbeat_seconds
from lobstah_core.discovery.merge import merge_announcements
from lobstah_core.discovery.tracker_client import TrackerClient
from lobstah_core.http import RunningServer
from lobstah_core.protocol import Identity, UrlPolicy, sign_announcement
from lobstah_core.router.peers import Peer, PeerStore
from lobstah_core.tracker import create_app as create_tracker

from ..conftest import StartRouter, StartWorker

WORKER_ID = Identity.from_seed(b"\xf1" * 32)
LOOPBACK_OK = UrlPolicy(allow_loopback=True)


def now_ms() -> int:
    return time.time_ns() // 1_000_000


@pytest.fixture
async def tracker() -> AsyncIterator[RunningServer]:
    server = await RunningServer(create_tracker(), "127.0.0.1", 0, "tracker").start()
    yield server
    await server.stop()


async def tracker_list(tracker: RunningServer) -> list[Any]:
    async with aiohttp.ClientSession() as session:
        return await TrackerClient(session, tracker.url).announcements()


def signed(identity: Identity, url: str, **changes: Any) -> dict[str, Any]:
    body = {"version": 1, "pubkey": identity.pubkey, "url": url, "ttlSeconds": 300, "announcedAt": now_ms(), **changes}
    return sign_announcement(body, identity).to_wire()


async def test_advertise_sync_and_serve(tracker: RunningServer, start_worker: StartWorker, start_router: StartRouter, router_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LOBSTAH_ALLOW_LOOPBACK", "1")  # a single-machine grid opts in
    worker = await start_worker(identity=WORKER_ID, tier="interactive")

    async def models() -> list[str]:
        return ["demo-fast", "demo-smart"]

    channel = TrackerChannel(tracker.url, WORKER_ID, now_ms)
    advertiser = Advertiser(WORKER_ID, [channel], worker.url, models, now_ms, label="attic", tier="interactive")
    await advertiser.start()
    assert "announced" in advertiser.last_result and advertiser.running
    listed = await tracker_list(tracker)
    assert [a["announcement"]["label"] for a in listed] == ["attic"]

    store = PeerStore(router_home / "peers.json")
    report = await merge_announcements(listed, store, "tracker", LOOPBACK_OK, now_ms())
    assert report.added == [WORKER_ID.pubkey] and report.rejected == []
    peer = store.load()[0]
    assert (peer.source, peer.label, peer.url) == ("tracker", "attic", worker.url)
    assert peer.expires_at is not None and peer.expires_at > now_ms()
    again = await merge_announcements(listed, store, "tracker", LOOPBACK_OK, now_ms())
    assert again.refreshed == [WORKER_ID.pubkey] and again.added == []

    router = await start_router()
    async with httpx.AsyncClient(base_url=router.url) as http:
        response = await http.post("/v1/chat/completions", json={"model": "demo-fast", "messages": [{"role": "user", "content": "found you"}]})
    assert response.status_code == 200

    await advertiser.stop()  # a clean shutdown withdraws the announcement
    assert await tracker_list(tracker) == [] and "withdrawn" in advertiser.last_result


async def test_loopback_refused_unless_allowed_and_link_local_always(tmp_path: Path) -> None:
    store = PeerStore(tmp_path / "peers.json")
    loopback = signed(WORKER_ID, "http://127.0.0.1:17474")
    refused = await merge_announcements([loopback], store, "tracker", UrlPolicy(), now_ms())
    assert refused.added == [] and "loopback" in refused.rejected[0][1]
    metadata = [signed(Identity.from_seed(bytes([n]) * 32), url) for n, url in
                ((1, "http://169.254.169.254/latest"), (2, "http://[fe80::1]:17474"), (3, "http://0.0.0.0:17474"), (4, "file:///etc/passwd"))]
    report = await merge_announcements(metadata, store, "tracker", LOOPBACK_OK, now_ms())
    assert report.added == [] and len(report.rejected) == 4
    assert store.load() == []


async def test_forged_stale_future_are_refused_and_newest_wins(tmp_path: Path) -> None:
    store = PeerStore(tmp_path / "peers.json")
    forged = signed(WORKER_ID, "http://203.0.113.5:17474")
    forged["announcement"]["url"] = "http://203.0.113.66:17474"
    other = Identity.from_seed(b"\xf2" * 32)
    older = signed(other, "http://203.0.113.7:17474", announcedAt=now_ms() - 10_000)
    newer = signed(other, "http://203.0.113.8:17474")
    raw = [forged, signed(WORKER_ID, "http://203.0.113.5:17474", announcedAt=now_ms() - 301_000),
           signed(WORKER_ID, "http://203.0.113.5:17474", announcedAt=now_ms() + 301_000), {"junk": True}, newer, older]
    report = await merge_announcements(raw, store, "tracker", UrlPolicy(), now_ms())
    reasons = " | ".join(why for _, why in report.rejected)
    assert "does not verify" in reasons and "stale" in reasons and "future" in reasons and "malformed" in reasons
    assert report.added == [other.pubkey]
    assert [p.url for p in store.load()] == ["http://203.0.113.8:17474"]


async def test_a_manual_peer_is_never_replaced(tmp_path: Path) -> None:
    store = PeerStore(tmp_path / "peers.json")
    store.add(Peer(pubkey=WORKER_ID.pubkey, url="http://192.0.2.1:17474", label="mine"))
    report = await merge_announcements([signed(WORKER_ID, "http://203.0.113.9:17474")], store, "tracker", UrlPolicy(), now_ms())
    assert report.added == [] and "by hand" in report.rejected[0][1]
    assert store.load()[0].url == "http://192.0.2.1:17474"


async def test_expired_discovered_peers_drop_out_of_routing(start_worker: StartWorker, start_router: StartRouter, router_home: Path) -> None:
    worker = await start_worker(identity=WORKER_ID)
    store = PeerStore(router_home / "peers.json")
    store.save([Peer(pubkey=WORKER_ID.pubkey, url=worker.url, source="tracker", expires_at=now_ms() - 1)])
    router = await start_router()
    async with httpx.AsyncClient(base_url=router.url) as http:
        assert (await http.get("/peers")).json() == []
        response = await http.post("/v1/chat/completions", json={"model": "demo-fast", "messages": [{"role": "user", "content": "x"}]})
    assert response.status_code == 503 and response.json()["error"]["type"] == "no_peers"


async def test_discovered_loopback_peer_is_refused_at_request_time(start_worker: StartWorker, start_router: StartRouter, router_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # As if DNS now pointed the announced name at loopback: the router re-checks before calling.
    monkeypatch.delenv("LOBSTAH_ALLOW_LOOPBACK", raising=False)
    worker = await start_worker(identity=WORKER_ID)
    PeerStore(router_home / "peers.json").save([Peer(pubkey=WORKER_ID.pubkey, url=worker.url, source="tracker", expires_at=now_ms() + 300_000)])
    router = await start_router()
    async with httpx.AsyncClient(base_url=router.url) as http:
        response = await http.post("/v1/chat/completions", json={"model": "demo-fast", "messages": [{"role": "user", "content": "x"}]})
    assert response.status_code == 502
    assert "loopback" in response.json()["error"]["errors"][0]["message"]


def test_heartbeat_interval() -> None:
    assert heartbeat_seconds(300) == 150 and heartbeat_seconds(40) == 30


async def test_one_poison_entry_in_a_tracker_list_costs_only_itself(tmp_path: Path) -> None:
    # A hostile tracker serves a 400-digit number among honest announcements: once enough to
    # abort the whole sync (OverflowError in canonicalize).
    honest = [signed(Identity.from_seed(bytes([n]) * 32), f"http://203.0.113.{n}:17474") for n in (11, 12)]
    poison = json.dumps(signed(WORKER_ID, "http://203.0.113.13:17474")).replace('"ttlSeconds": 300', '"ttlSeconds": ' + "9" * 400)
    listing = '{"version":1,"count":3,"peers":[' + ",".join([json.dumps(honest[0]), poison, json.dumps(honest[1])]) + "]}"

    async def peers(_: web.Request) -> web.Response:
        return web.Response(text=listing, content_type="application/json")

    app = web.Application()
    app.router.add_get("/peers", peers)
    hostile = await RunningServer(app, "127.0.0.1", 0, "hostile tracker").start()
    try:
        raw = await tracker_list(hostile)
    finally:
        await hostile.stop()
    store = PeerStore(tmp_path / "peers.json")
    report = await merge_announcements(raw, store, "tracker", UrlPolicy(), now_ms())
    assert sorted(report.added) == sorted(a["announcement"]["pubkey"] for a in honest)
    assert report.rejected == [(WORKER_ID.pubkey, report.rejected[0][1])] and "malformed" in report.rejected[0][1]
    assert len(store.load()) == 2


async def test_cloud_metadata_urls_are_never_merged(tmp_path: Path) -> None:
    store = PeerStore(tmp_path / "peers.json")
    urls = ("http://[fd00:ec2::254]/", "http://100.100.100.200/", "http://[64:ff9b::a9fe:a9fe]:17474")
    raw = [signed(Identity.from_seed(bytes([20 + n]) * 32), url) for n, url in enumerate(urls)]
    report = await merge_announcements(raw, store, "tracker", UrlPolicy(block_private=False), now_ms())
    assert report.added == [] and len(report.rejected) == 3
    assert store.load() == []
