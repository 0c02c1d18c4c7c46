"""`lobstah-tui --attach`: the dashboard over a headless node's HTTP API."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path

import httpx
import openai

from lobstah_core.config import RouterSettings, WorkerSettings
from lobstah_core.identity_file import load_or_create_identity
from lobstah_core.node import EngineSettings, Node, NodeSettings
from lobstah_core.remote import RemoteNode
from lobstah_core.router.peers import Peer, PeerStore
from lobstah_tui.app import LobstahApp
from lobstah_tui.widgets.batches import BatchesPanel

from .screen_text import screen_rows
from .test_app import log_text, peer_states, wait_for


def headless_node(home: Path) -> Node:
    """A node as `lobstah-core serve` runs it: a router, and a demo worker it serves itself with."""
    identity = load_or_create_identity(home / "identity.json")
    return Node(NodeSettings(router=RouterSettings(port=0), worker=WorkerSettings(port=0, label="attic"),
                             engine=EngineSettings(name="demo", first_token_delay=0, tokens_per_second=0)),
                identity, home / "identity.json", home)


async def test_attached_dashboard_follows_a_headless_node(tmp_path: Path) -> None:
    node = headless_node(tmp_path)
    identity = node.identity
    await node.start()
    try:
        assert node.router is not None and node.worker is not None
        PeerStore(tmp_path / "peers.json").add(Peer(pubkey=identity.pubkey, url=node.worker.url, label="attic"))
        app = LobstahApp(RemoteNode(node.router.url))
        async with app.run_test(size=(120, 36)) as pilot:
            await wait_for(pilot, lambda: "healthy" in peer_states(app).get("this node", ""))
            async with httpx.AsyncClient(base_url=node.router.url) as http:
                reply = await http.post("/v1/chat/completions", json={"model": "demo-fast", "messages": [{"role": "user", "content": "seen?"}]})
                assert reply.status_code == 200
            await wait_for(pilot, lambda: "→ spent" in log_text(app) and "← earned" in log_text(app))
            assert identity.pubkey[:16] in str(app.query_one("#identity").render())
            await pilot.press("a")  # switches belong to the headless node
            await wait_for(pilot, lambda: bool(app._notifications))
            assert not app.query_one("#advertise").value
            await pilot.pause(0.2)
    finally:
        await node.stop()
        await asyncio.sleep(0)


async def test_attached_dashboard_shows_the_batches_there_before_it_and_follows_new_ones(tmp_path: Path) -> None:
    node = headless_node(tmp_path)
    identity = node.identity
    await node.start()
    assert node.router is not None
    client = openai.AsyncOpenAI(base_url=f"{node.router.url}/v1", api_key="x", max_retries=0)
    try:
        earlier = await _run_batch(client, 5)
        for _ in range(100):
            if (await client.batches.retrieve(earlier)).status == "completed":
                break
            await asyncio.sleep(0.1)
        app = LobstahApp(RemoteNode(node.router.url))
        async with app.run_test(size=(120, 36)) as pilot:
            panel = app.query_one(BatchesPanel)
            await wait_for(pilot, lambda: earlier in panel.rows)
            assert (panel.rows[earlier].status, panel.rows[earlier].completed) == ("completed", 5)
            assert panel.rows[earlier].items_per_peer == {identity.pubkey: 5}  # the node served itself
            later = await _run_batch(client, 7)
            await wait_for(pilot, lambda: later in panel.rows and panel.rows[later].status == "completed")
            assert panel.rows[later].items_per_peer == {identity.pubkey: 7}
            await wait_for(pilot, lambda: "this node 7" in "".join(screen_rows(app)))
    finally:
        await client.close()
        await node.stop()
        await asyncio.sleep(0)


async def _run_batch(client: openai.AsyncOpenAI, items: int) -> str:
    lines = "".join(json.dumps({"custom_id": f"c{n}", "method": "POST", "url": "/v1/chat/completions",
                                "body": {"model": "demo-fast", "messages": [{"role": "user", "content": "hi"}]}}) + "\n"
                    for n in range(items))
    upload = await client.files.create(file=("in.jsonl", lines.encode()), purpose="batch")
    return (await client.batches.create(input_file_id=upload.id, endpoint="/v1/chat/completions", completion_window="1h")).id


def test_attach_to_nothing_is_one_line() -> None:
    result = subprocess.run([sys.executable, "-c", "import sys; from lobstah_tui.app import main; sys.exit(main(['--attach', 'http://127.0.0.1:9']))"],
                            capture_output=True, text=True, timeout=30)
    assert result.returncode == 1 and "no Lobstah router answers" in result.stderr and "Traceback" not in result.stderr
