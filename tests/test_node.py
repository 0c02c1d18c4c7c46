"""The Node: servers as tasks in one loop, one bus, a snapshot, remembered switches."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import pytest

from lobstah_core.config import AdvertiseSettings, RouterSettings, WorkerSettings
from lobstah_core.errors import SwitchRefused
from lobstah_core.events import ReceiptAccepted, ReceiptIssued
from lobstah_core.http import RunningServer
from lobstah_core.identity_file import load_or_create_identity
from lobstah_core.node import EngineSettings, Node, NodeSettings, SyncSettings
from lobstah_core.router.peers import Peer, PeerStore
from lobstah_core.tracker import create_app as create_tracker


def settings(**changes: object) -> NodeSettings:
    base = NodeSettings(router=RouterSettings(port=0), worker=WorkerSettings(port=0, label="self"),
                        engine=EngineSettings(name="demo", first_token_delay=0, tokens_per_second=0))
    return base.model_copy(update=changes)


async def test_router_and_worker_in_one_loop_share_one_bus(tmp_path: Path) -> None:
    identity = load_or_create_identity(tmp_path / "identity.json")
    node = Node(settings(), identity, tmp_path / "identity.json", tmp_path)
    async with node.bus.subscribe() as events:
        await node.start()
        try:
            assert node.worker is not None and node.router is not None
            # An entry for its own key (as `peers add` once had to write) gives way to the node itself.
            PeerStore(tmp_path / "peers.json").add(Peer(pubkey=identity.pubkey, url=node.worker.url, label="self"))
            async with httpx.AsyncClient(base_url=node.router.url) as http:
                for _ in range(50):  # the router follows peers.json and probes the new peer
                    if (await http.get("/v1/models")).json()["data"]:
                        break
                    await asyncio.sleep(0.1)
                reply = await http.post("/v1/chat/completions", json={"model": "demo-fast", "messages": [{"role": "user", "content": "hi me"}]})
                assert reply.status_code == 200
            kinds: set[type] = set()
            async with asyncio.timeout(5):
                while not {ReceiptIssued, ReceiptAccepted} <= kinds:
                    kinds.add(type(await events.get()))
            snap = await node.snapshot()
            assert snap.router_url == node.router.url and snap.worker_queue_depth == 0
            assert [(p.label, p.source, p.models) for p in snap.peers] == [("this node", "self", ("demo-fast", "demo-smart"))]
            assert snap.balance is not None and snap.balance.self.net == 0 and snap.balance.totals.receipts == 1
            assert len(snap.recent) == 1
            assert snap.advertise == (False, "off") and snap.sync == (False, "off")
        finally:
            await node.stop()


async def test_switches_are_off_by_default_and_remembered(tmp_path: Path) -> None:
    tracker = await RunningServer(create_tracker(), "127.0.0.1", 0, "tracker").start()
    identity = load_or_create_identity(tmp_path / "identity.json")
    configured = settings(advertise=AdvertiseSettings(tracker_url=tracker.url, announce_url="http://203.0.113.40:17474"),
                          sync=SyncSettings(trackers=[tracker.url], interval_seconds=60))
    node = Node(configured, identity, tmp_path / "identity.json", tmp_path)
    await node.start()
    try:
        assert (node.switches.advertise, node.switches.sync) == (False, False)
        async with httpx.AsyncClient(base_url=tracker.url) as http:
            assert (await http.get("/peers")).json()["count"] == 0
            await node.set_advertise(True)
            assert (await http.get("/peers")).json()["count"] == 1
            await node.set_sync(True)
            snap = await node.snapshot()
            assert snap.advertise[0] and "announced to" in snap.advertise[1]
    finally:
        await node.stop()
    async with httpx.AsyncClient(base_url=tracker.url) as http:
        assert (await http.get("/peers")).json()["count"] == 0  # stopping withdrew it

    again = Node(configured, identity, tmp_path / "identity.json", tmp_path)
    assert (again.switches.advertise, again.switches.sync) == (True, True)
    await again.start()
    try:
        async with httpx.AsyncClient(base_url=tracker.url) as http:
            assert (await http.get("/peers")).json()["count"] == 1
        await again.set_advertise(False)
        await again.set_sync(False)
    finally:
        await again.stop()
        await tracker.stop()
    assert Node(configured, identity, tmp_path / "identity.json", tmp_path).switches.advertise is False


async def test_switches_refuse_what_they_cannot_do(tmp_path: Path) -> None:
    identity = load_or_create_identity(tmp_path / "identity.json")
    node = Node(settings(worker=None), identity, tmp_path / "identity.json", tmp_path)
    await node.start()
    try:
        with pytest.raises(SwitchRefused, match="needs a worker"):
            await node.set_advertise(True)
        with pytest.raises(SwitchRefused, match="tracker or a Nostr relay"):
            await node.set_sync(True)
        assert not (tmp_path / "node.json").exists()
    finally:
        await node.stop()
