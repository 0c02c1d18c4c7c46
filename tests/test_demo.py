"""The demo grid shows what the README promises: receipts flowing, a flaky peer excluded."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

from lobstah_core.demo import DemoGrid, DemoWorker
from lobstah_core.events import PeerExcluded, ReceiptAccepted, ReceiptIssued


async def test_receipts_flow_and_the_flaky_peer_is_excluded(tmp_path: Path) -> None:
    workers = (DemoWorker("swift", "interactive", 0.0, 0.0), DemoWorker("flaky", "best-effort", 0.0, 0.0, drop_rate=1.0))
    grid = DemoGrid(tmp_path, workers)
    seen: dict[type, set[str]] = {ReceiptAccepted: set(), PeerExcluded: set()}
    async with grid.bus.subscribe() as events:
        await grid.start()
        traffic = asyncio.create_task(grid.traffic(every=0.05))
        try:
            async with asyncio.timeout(15):
                while not (seen[ReceiptAccepted] and seen[PeerExcluded]):
                    event = await events.get()
                    if type(event) in seen:
                        seen[type(event)].add(grid.labels[event.peer])
                        assert grid.describe(event)
        finally:
            traffic.cancel()
            await grid.stop()
    assert seen[ReceiptAccepted] == {"swift"}
    assert seen[PeerExcluded] == {"flaky"}


def test_demo_command_runs_and_reports_a_balance() -> None:
    result = subprocess.run([sys.executable, "-m", "lobstah_core.demo", "--seconds", "4"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert "lobstah demo grid" in result.stdout and "→ spent" in result.stdout
    assert "router balance: spent" in result.stdout


async def test_the_demo_node_earns_as_well_as_spends(tmp_path: Path) -> None:
    grid = DemoGrid(tmp_path, (DemoWorker("swift", "interactive", 0.0, 0.0),))
    async with grid.bus.subscribe() as events:
        await grid.start()
        traffic = asyncio.create_task(grid.traffic(every=0.05, served_share=0.5))
        kinds: set[type] = set()
        try:
            async with asyncio.timeout(15):
                while not {ReceiptAccepted, ReceiptIssued} <= kinds:
                    event = await events.get()
                    kinds.add(type(event))
                    if isinstance(event, ReceiptIssued):
                        assert grid.labels[event.requester] == "swift"  # another demo node asked us
        finally:
            traffic.cancel()
            await grid.stop()
