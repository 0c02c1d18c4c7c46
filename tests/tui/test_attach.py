"""`lobstah-tui --attach`: the dashboard over a headless node's HTTP API."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

import httpx

from lobstah_core.config import RouterSettings, WorkerSettings
from lobstah_core.identity_file import load_or_create_identity
from lobstah_core.node import EngineSettings, Node, NodeSettings
from lobstah_core.remote import RemoteNode
from lobstah_core.router.peers import Peer, PeerStore
from lobstah_tui.app import LobstahApp

from .test_app import log_text, peer_states, wait_for


async def test_attached_dashboard_follows_a_headless_node(tmp_path: Path) -> None:
    identity = load_or_create_identity(tmp_path / "identity.json")
    node = Node(NodeSettings(router=RouterSettings(port=0), worker=WorkerSettings(port=0, label="attic"),
                             engine=EngineSettings(name="demo", first_token_delay=0, tokens_per_second=0)),
                identity, tmp_path / "identity.json", tmp_path)
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


def test_attach_to_nothing_is_one_line() -> None:
    result = subprocess.run([sys.executable, "-c", "import sys; from lobstah_tui.app import main; sys.exit(main(['--attach', 'http://127.0.0.1:9']))"],
                            capture_output=True, text=True, timeout=30)
    assert result.returncode == 1 and "no Lobstah router answers" in result.stderr and "Traceback" not in result.stderr
