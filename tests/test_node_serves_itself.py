"""A node serves itself: on a fresh home, with no `peers add`, its router answers with its own
worker, lists it as this node, and no credit moves between the node and itself."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx

from lobstah_core.config import RouterSettings, WorkerSettings
from lobstah_core.events import ReceiptAccepted
from lobstah_core.identity_file import load_or_create_identity
from lobstah_core.node import EngineSettings, Node, NodeSettings
from lobstah_core.router.peers import Peer, PeerStore


def demo_node(home: Path) -> Node:
    identity = load_or_create_identity(home / "identity.json")
    settings = NodeSettings(router=RouterSettings(port=0), worker=WorkerSettings(port=0),
                            engine=EngineSettings(name="demo", first_token_delay=0, tokens_per_second=0))
    return Node(settings, identity, home / "identity.json", home)


async def chat(http: httpx.AsyncClient) -> httpx.Response:
    for _ in range(50):  # the first capacity probe of the own worker is under way
        reply = await http.post("/v1/chat/completions", json={"model": "demo-fast", "messages": [{"role": "user", "content": "hi"}]})
        if reply.status_code != 503:
            return reply
        await asyncio.sleep(0.1)
    return reply


async def test_a_fresh_node_answers_with_its_own_worker(tmp_path: Path) -> None:
    node = demo_node(tmp_path)
    await node.start()
    try:
        assert node.router_url is not None
        async with httpx.AsyncClient(base_url=node.router_url) as http:
            before = (await http.get("/balance")).json()["self"]
            reply = await chat(http)
            assert reply.status_code == 200, reply.text
            assert reply.json()["choices"][0]["message"]["content"]
            peers = (await http.get("/peers")).json()
            assert [(p["pubkey"], p["label"], p["source"]) for p in peers] == [(node.pubkey, "this node", "self")]
            await asyncio.sleep(0.5)  # receipts are ledgered after the answer
            after = (await http.get("/balance")).json()["self"]
        assert after["available"] == before["available"] and after["net"] == before["net"]
        assert not (tmp_path / "peers.json").exists()  # nothing written for it
    finally:
        await node.stop()


async def test_its_own_worker_comes_first_then_the_grid(tmp_path: Path) -> None:
    other = demo_node(tmp_path / "other")
    await other.start()
    node = demo_node(tmp_path / "mine")
    assert other.worker is not None
    PeerStore(tmp_path / "mine" / "peers.json").add(Peer(pubkey=other.pubkey, url=other.worker.url, label="other"))
    await node.start()
    try:
        assert node.router_url is not None
        for _ in range(50):  # both workers' capacity known: both can serve demo-fast
            if all(peer.models for peer in (await node.snapshot()).peers):
                break
            await asyncio.sleep(0.1)
        async with node.bus.subscribe() as events, httpx.AsyncClient(base_url=node.router_url) as http:
            for _ in range(4):  # one at a time: the own worker always has a free slot
                assert (await chat(http)).status_code == 200
            await asyncio.sleep(0.5)
            served_by = []
            while not events.empty():
                event = events.get_nowait()
                if isinstance(event, ReceiptAccepted):
                    served_by.append(event.peer)
        assert served_by and set(served_by) == {node.pubkey}
        assert [peer.source for peer in (await node.snapshot()).peers] == ["self", "manual"]
    finally:
        await node.stop()
        await other.stop()
