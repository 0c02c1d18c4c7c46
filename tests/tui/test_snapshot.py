"""The main screen, rendered from a committed recording at a fixed size, clock and timezone.

Run with UPDATE_SNAPSHOTS=1 to re-record after a deliberate change to the screen; then look at
tests/tui/snapshots/main.svg before committing it.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

from lobstah_tui.app import LobstahApp
from lobstah_tui.widgets.receipts import ReceiptsPanel

from .replay import ReplayNode

HERE = Path(__file__).parent
RECORDING = HERE / "recordings" / "grid.json"
SNAPSHOT = HERE / "snapshots" / "main.svg"


@pytest.fixture
def utc(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


async def render(size: tuple[int, int]) -> str:
    now = json.loads(RECORDING.read_text())["now"]
    app = LobstahApp(ReplayNode(RECORDING), clock_ms=lambda: now)
    async with app.run_test(size=size) as pilot:
        expected = len(json.loads(RECORDING.read_text())["events"]) - 3  # failures/exclusions are not receipts
        for _ in range(100):
            await pilot.pause(0.05)
            if len(app.query_one(ReceiptsPanel).lines) >= expected:
                break
        # A snapshot after every event has landed redraws the plot; from then on the screen is
        # a fixed point (fixed clock, same data), whatever the timers do.
        app.refresh_snapshot()
        await pilot.pause(0.5)
        return app.export_screenshot(title="Lobstah grid")


async def test_main_screen_matches_the_recording(utc: None) -> None:
    svg = await render((100, 30))
    if os.environ.get("UPDATE_SNAPSHOTS") == "1" or not SNAPSHOT.exists():
        SNAPSHOT.parent.mkdir(exist_ok=True)
        SNAPSHOT.write_text(svg, encoding="utf-8")
    assert svg == SNAPSHOT.read_text(encoding="utf-8"), "the main screen changed (UPDATE_SNAPSHOTS=1 to re-record)"


async def test_the_recording_renders_the_same_twice(utc: None) -> None:
    assert await render((80, 24)) == await render((80, 24))
