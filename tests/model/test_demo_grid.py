"""The demo grid with a real model behind it (``lobstah-tui --demo --engine llamacpp``)."""

from __future__ import annotations

from pathlib import Path

import pytest

from lobstah_core.demo import DEMO_WORKERS, REAL_MODEL_WORKER, DemoGrid

from .conftest import MODEL

pytestmark = pytest.mark.model


async def test_the_prompt_box_gets_a_real_answer_beside_the_demo_workers(tmp_path: Path) -> None:
    grid = DemoGrid(tmp_path, DEMO_WORKERS + (REAL_MODEL_WORKER,))
    await grid.start()
    try:
        pieces = [piece async for piece in grid.node.chat_stream(MODEL, "What is the grid?")]
        demo = [piece async for piece in grid.node.chat_stream("demo-fast", "What is the grid?")]
    finally:
        await grid.stop()
    assert len(pieces) > 1 and "".join(pieces).strip()
    assert "".join(pieces) != "".join(demo)  # the demo engine's lobster words are not what the model says
    assert "llama" in grid.labels.values()
