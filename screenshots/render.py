"""Render the dashboard on the demo grid to SVG files in screenshots/ (``make screenshots``).

The grid runs for real (demo workers, one flaky, live traffic); each screenshot is taken once
the screen shows what it is meant to show, at a fixed 120x36 terminal.
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
from pathlib import Path

from lobstah_core.demo import DemoGrid
from lobstah_tui.app import LobstahApp
from lobstah_tui.widgets.peers import PeersPanel
from lobstah_tui.widgets.receipts import ReceiptsPanel

OUT = Path(__file__).resolve().parent


async def shoot() -> None:
    OUT.mkdir(exist_ok=True)
    with tempfile.TemporaryDirectory() as scratch:
        demo = DemoGrid(Path(scratch), exclusion_seconds=30)
        app = LobstahApp(demo.node, demo)
        async with app.run_test(size=(120, 36)) as pilot:
            table = app.query_one(PeersPanel)
            for _ in range(600):  # until receipts flow both ways and the flaky peer has been excluded
                await pilot.pause(0.1)
                states = [str(table.get_row(key)[1]) for key in table.rows]
                lines = [line.text for line in app.query_one(ReceiptsPanel).lines]
                if len(lines) > 8 and any("earned" in line for line in lines) and any("excluded" in s for s in states):
                    break
            app.save_screenshot("dashboard.svg", path=str(OUT))
            await pilot.press("p")
            await pilot.press(*"Why lend a Mac mini at night?")
            await pilot.press("enter")
            await pilot.pause(3)
            app.save_screenshot("prompt.svg", path=str(OUT))
    print(f"wrote {OUT / 'dashboard.svg'} and {OUT / 'prompt.svg'}")


if __name__ == "__main__":
    asyncio.run(shoot())
    sys.exit(0)
