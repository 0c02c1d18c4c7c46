"""The dashboard's demo with a real model (``lobstah-tui --demo --engine llamacpp``), by Pilot."""

from __future__ import annotations

from pathlib import Path

import pytest

from lobstah_core.demo import REAL_MODEL_WORKER, DemoGrid, DemoWorker
from lobstah_tui.app import LobstahApp

from ..tui.test_app import peer_states, wait_for
from .conftest import MODEL

pytestmark = pytest.mark.model


async def test_the_prompt_box_streams_a_real_answer(tmp_path: Path) -> None:
    demo = DemoGrid(tmp_path, (DemoWorker("swift", "interactive", 0, 200), REAL_MODEL_WORKER))
    app = LobstahApp(demo.node, demo, model=MODEL)
    async with app.run_test(size=(100, 32)) as pilot:
        await wait_for(pilot, lambda: "healthy" in peer_states(app).get("llama", ""), seconds=30)
        await pilot.press("p", *"What is a lobster?", "enter")
        await wait_for(pilot, lambda: len(str(app.query_one("#prompt-output").render()).split()) > 5, seconds=60)
        assert "lobsters molt" not in str(app.query_one("#prompt-output").render())  # not the demo engine's words
        # The answer may run on for a thousand tokens. Leaving the app while it streams ends in
        # the prompt worker writing to a removed widget (reported to the dashboard's owner), so
        # the test stops it first.
        app.workers.cancel_group(app, "prompt")
        await pilot.pause(0.2)
