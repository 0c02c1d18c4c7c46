"""The Batches panel: a batch's progress, the peers that served it and the time left, as the
router's batch events arrive; its final status; batches already there when the dashboard
starts; an 80x24 terminal. Recorded grid (Pilot, no servers), then a live one."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import openai

from textual.pilot import Pilot

from lobstah_core.demo import DemoGrid, DemoWorker
from lobstah_core.events import BatchProgressed, BatchStatusChanged, Event
from lobstah_tui.app import LobstahApp
from lobstah_tui.widgets.batches import BatchesPanel
from lobstah_tui.widgets.peers import PeersPanel

from .replay import ReplayNode
from .screen_text import screen_rows
from .test_app import wait_for

RECORDING = Path(__file__).parent / "recordings" / "grid.json"
NOW = json.loads(RECORDING.read_text())["now"]
SWIFT, STEADY, _ = (peer["pubkey"] for peer in json.loads(RECORDING.read_text())["snapshot"]["peers"])
BATCH = "batch_" + "5eed" * 8  # as long as a real id


def progress(at_s: float, completed: int, peer: str, peer_completed: int, failed: int = 0) -> BatchProgressed:
    return BatchProgressed(NOW + int(at_s * 1000), BATCH, completed, failed, 100, peer, peer_completed)


def status(name: str, completed: int, failed: int = 0, reason: str | None = None) -> BatchStatusChanged:
    return BatchStatusChanged(NOW, BATCH, name, completed, failed, 100, reason)


def block(app: LobstahApp) -> list[str]:
    """The screen rows from the batch's first row to the panel's bottom border."""
    rows = screen_rows(app)
    start = next((i for i, row in enumerate(rows) if BATCH[:16] in row), None)  # the id may be cut short
    if start is None:
        return []
    return rows[start:start + next(i for i, row in enumerate(rows[start:]) if "╰" in row)]


@asynccontextmanager
async def dashboard(node: ReplayNode, size: tuple[int, int] = (80, 24)) -> AsyncIterator[tuple[LobstahApp, Pilot[None]]]:
    """The app over ``node``, once its peers are on screen."""
    app = LobstahApp(node, clock_ms=lambda: NOW)
    async with app.run_test(size=size) as pilot:
        await wait_for(pilot, lambda: len(app.query_one(PeersPanel).rows) == 3)
        yield app, pilot


def publish(node: ReplayNode, *events: Event) -> None:
    for event in events:
        node.bus.publish(event)


async def test_no_batch_no_panel() -> None:
    node = ReplayNode(RECORDING)
    async with dashboard(node) as (app, pilot):
        await pilot.pause(0.5)
        assert not app.query_one(BatchesPanel).display
        assert not any("Batches" in row for row in screen_rows(app))


async def test_progress_per_peer_counts_and_eta_appear_and_update_then_the_final_status() -> None:
    node = ReplayNode(RECORDING)
    async with dashboard(node) as (app, pilot):
        publish(node, status("in_progress", 0), progress(0, 1, SWIFT, 1))
        await wait_for(pilot, lambda: any("1/100" in row for row in block(app)))
        rows = block(app)
        assert "in_progress" in rows[0] and "ETA —" in rows[0]  # one outcome: no rate yet
        assert "swift 1" in rows[2]
        # 20 outcomes in 10 s more: 2 a second, 79 to go → ETA 40 s.
        served = {SWIFT: 1, STEADY: 0}
        for n in range(2, 22):
            peer = STEADY if n % 4 == 0 else SWIFT
            served[peer] += 1
            publish(node, progress((n - 1) / 2, n, peer, served[peer]))
        await wait_for(pilot, lambda: any("21/100" in row for row in block(app)))
        rows = block(app)
        assert "ETA 40s" in rows[0], rows
        assert "━" in rows[1]  # the bar
        assert "swift 16 · steady 5" in rows[2], rows  # busiest first, by label
        publish(node, progress(12, 98, SWIFT, 80, failed=2), status("finalizing", 98, 2), status("completed", 98, 2))
        await wait_for(pilot, lambda: any("completed" in row for row in block(app)))
        rows = block(app)
        assert "ETA" not in rows[0] and "98/100" in rows[0] and "✗2" in rows[0]  # no bar once it has ended
        assert "swift 80 · steady 5" in rows[1]


async def test_a_paused_batch_says_why() -> None:
    node = ReplayNode(RECORDING)
    async with dashboard(node) as (app, pilot):
        publish(node, status("in_progress", 3, reason="paused: every peer serving 'demo-fast' says our credit is used up"))
        await wait_for(pilot, lambda: any("paused: every peer" in row for row in block(app)))


class RestartedDashboard(ReplayNode):
    """The router already ran batches before the dashboard started."""

    def __init__(self, recording: Path) -> None:
        super().__init__(recording)
        self.recording["batches"] = [
            _batch_object(BATCH, "in_progress", 40, 1, {SWIFT: 30, STEADY: 10}),
            _batch_object("batch_old", "completed", 10, 0, {STEADY: 10}),
        ]


def _batch_object(batch_id: str, status: str, completed: int, failed: int, per_peer: dict[str, int]) -> dict[str, Any]:
    return {"id": batch_id, "object": "batch", "status": status, "items_per_peer": per_peer, "paused_reason": None,
            "request_counts": {"completed": completed, "failed": failed, "total": 100 if status != "completed" else 10}}


async def test_a_restarted_dashboard_shows_the_batches_already_there_and_follows_them() -> None:
    node = RestartedDashboard(RECORDING)
    async with dashboard(node) as (app, pilot):
        await wait_for(pilot, lambda: any("batch_old" in row for row in screen_rows(app)))
        # The peers are named once the first snapshot has named them (the load may come first).
        await wait_for(pilot, lambda: "swift 30 · steady 10" in "".join(block(app)[2:3]))
        rows = block(app)
        assert "in_progress" in rows[0] and "40/100" in rows[1] and "✗1" in rows[1]
        publish(node, progress(0, 41, SWIFT, 31, failed=1))
        await wait_for(pilot, lambda: any("swift 31" in row for row in block(app)))
        assert any("completed" in row for row in screen_rows(app) if "batch_old" in row)


async def test_80x24_keeps_peers_receipts_and_the_batch_readable() -> None:
    node = RestartedDashboard(RECORDING)
    async with dashboard(node, size=(80, 24)) as (app, pilot):
        await wait_for(pilot, lambda: any("→ spent" in row for row in screen_rows(app)))
        await wait_for(pilot, lambda: bool(block(app)))
        rows = screen_rows(app)
        assert all(any(name in row for row in rows) for name in ("swift", "steady", "flaky"))  # every peer row
        assert sum("→ spent" in row or "← earned" in row for row in rows) >= 2  # receipts still readable
        assert "40/100" in block(app)[1]  # the counts are not cut by the bar


async def test_a_batch_on_a_live_grid_shows_its_peers_and_completes(tmp_path: Path) -> None:
    workers = (DemoWorker("swift", "interactive", 0, 0), DemoWorker("steady", "batch", 0, 0))
    demo = DemoGrid(tmp_path, workers)
    app = LobstahApp(demo.node, demo)  # its chat traffic does not count in the batch's figures
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_for(pilot, lambda: len(app.query_one(PeersPanel).rows) == 2)
        # Closed before the app (and its node) stops: the SDK closes a client left open on
        # whatever loop runs when it is collected, a later test's.
        async with openai.AsyncOpenAI(base_url=f"{demo.node.router_url}/v1", api_key="x", max_retries=0) as client:
            batch = await _create_batch(client)
        panel = app.query_one(BatchesPanel)
        await wait_for(pilot, lambda: panel.rows.get(batch.id) is not None and panel.rows[batch.id].status == "completed")
        row = panel.rows[batch.id]
        assert (row.completed, row.failed, row.total) == (30, 0, 30)
        assert sum(row.items_per_peer.values()) == 30 and len(row.items_per_peer) == 2  # both peers served
        text = "\n".join(screen_rows(app))
        assert "30/30" in text and "swift" in text and "completed" in text


async def _create_batch(client: openai.AsyncOpenAI) -> Any:
    lines = [{"custom_id": f"item-{n}", "method": "POST", "url": "/v1/chat/completions",
              "body": {"model": "demo-fast", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 4}}
             for n in range(30)]
    upload = await client.files.create(file=("in.jsonl", "".join(json.dumps(line) + "\n" for line in lines).encode()),
                                       purpose="batch")
    return await client.batches.create(input_file_id=upload.id, endpoint="/v1/chat/completions", completion_window="1h")
