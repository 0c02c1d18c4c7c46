"""The dashboard driven with Textual's Pilot over real servers on loopback."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable
from pathlib import Path

import httpx

from lobstah_core.config import AdvertiseSettings, RouterSettings, WorkerSettings
from lobstah_core.demo import DemoGrid, DemoWorker
from lobstah_core.http import RunningServer
from lobstah_core.identity_file import load_or_create_identity
from lobstah_core.node import EngineSettings, Node, NodeSettings
from lobstah_core.tracker import create_app as create_tracker
from lobstah_tui.app import LobstahApp
from lobstah_tui.widgets.peers import PeersPanel
from lobstah_tui.widgets.receipts import ReceiptsPanel


def log_text(app: LobstahApp) -> str:
    return "\n".join(line.text for line in app.query_one(ReceiptsPanel).lines)


def peer_states(app: LobstahApp) -> dict[str, str]:
    table = app.query_one(PeersPanel)
    return {str(table.get_row(key)[0]): str(table.get_row(key)[1]) for key in table.rows}


async def wait_for(pilot: object, condition: Callable[[], bool], seconds: float = 15) -> None:
    for _ in range(int(seconds * 10)):
        if condition():
            return
        await pilot.pause(0.1)  # type: ignore[attr-defined]
    raise AssertionError("the screen never showed it")


async def test_a_living_grid_excluded_peer_counts_down_and_returns(tmp_path: Path) -> None:
    workers = (DemoWorker("swift", "interactive", 0, 0), DemoWorker("flaky", "best-effort", 0, 0, drop_rate=1.0))
    demo = DemoGrid(tmp_path, workers, exclusion_seconds=3)
    app = LobstahApp(demo.node, demo)
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_for(pilot, lambda: "→ spent" in log_text(app) and "swift" in log_text(app))
        await wait_for(pilot, lambda: "excluded" in peer_states(app).get("flaky", ""))
        assert any(ch.isdigit() for ch in peer_states(app)["flaky"])  # the countdown
        assert "healthy" in peer_states(app)["swift"]
        # Nothing sends to the flaky peer while it is out; when its time is up it is back.
        await wait_for(pilot, lambda: "healthy" in peer_states(app).get("flaky", ""), seconds=10)
        figures = str(app.query_one("#balance-figures").render())
        assert "spent" in figures and "available" in figures


async def test_switches_call_the_node_and_show_its_state(tmp_path: Path) -> None:
    tracker = await RunningServer(create_tracker(), "127.0.0.1", 0, "tracker").start()
    identity = load_or_create_identity(tmp_path / "identity.json")
    settings = NodeSettings(
        router=RouterSettings(port=0), worker=WorkerSettings(port=0),
        engine=EngineSettings(name="demo", first_token_delay=0, tokens_per_second=0),
        advertise=AdvertiseSettings(tracker_url=tracker.url, announce_url="http://203.0.113.50:17474"),
    )
    app = LobstahApp(Node(settings, identity, tmp_path / "identity.json", tmp_path))
    try:
        async with app.run_test(size=(100, 32)) as pilot:
            assert not app.query_one("#advertise").value and not app.query_one("#sync").value
            await pilot.press("a")
            async with httpx.AsyncClient() as http:
                for _ in range(50):
                    if (await http.get(f"{tracker.url}/peers")).json()["count"] == 1:
                        break
                    await asyncio.sleep(0.1)
                assert (await http.get(f"{tracker.url}/peers")).json()["count"] == 1
            await wait_for(pilot, lambda: "announced to" in str(app.query_one("#advertise-result").render()))
            assert "reachable" in str(app.query_one("#advertise-result").render())  # the tracker called back
            await pilot.press("s")  # nothing to sync from: it says so and stays off
            await wait_for(pilot, lambda: not app.query_one("#sync").value and bool(app._notifications))
            await pilot.press("a")
            await wait_for(pilot, lambda: "withdrawn" in str(app.query_one("#advertise-result").render()))
    finally:
        await tracker.stop()


async def test_prompt_streams_tokens_back(tmp_path: Path) -> None:
    demo = DemoGrid(tmp_path, (DemoWorker("swift", "interactive", 0, 200),))
    app = LobstahApp(demo.node, demo)
    async with app.run_test(size=(100, 32)) as pilot:
        await wait_for(pilot, lambda: "healthy" in peer_states(app).get("swift", ""))
        await pilot.press("p")
        await pilot.press(*"hello grid")
        await pilot.press("enter")
        await wait_for(pilot, lambda: len(str(app.query_one("#prompt-output").render()).split()) > 5)


async def test_switch_refusals_name_options_the_dashboard_takes(tmp_path: Path) -> None:
    from lobstah_tui.app import build_parser

    options = {option for action in build_parser()._actions for option in action.option_strings}
    identity = load_or_create_identity(tmp_path / "identity.json")
    node = Node(NodeSettings(router=RouterSettings(port=0), worker=None), identity, tmp_path / "identity.json", tmp_path)
    demo = DemoGrid(tmp_path / "demo", (DemoWorker("swift", "interactive", 0, 0),))
    for app in (LobstahApp(node), LobstahApp(demo.node, demo)):
        async with app.run_test(size=(100, 32)) as pilot:
            await pilot.press("a", "s")
            await wait_for(pilot, lambda: len(app._notifications) == 2)
            messages = " ".join(str(note.message) for note in app._notifications)
            named = set(re.findall(r"--[a-z][a-z-]+", messages))
            assert named and named <= options, named - options
            assert not app.query_one("#advertise").value and not app.query_one("#sync").value
