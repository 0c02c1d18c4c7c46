"""The dashboard as an operator meets it: an 80x24 terminal, a long answer, leaving the prompt
with Escape, an exclusion countdown that appears after the table was drawn, bursts of receipts
and of snapshots painted together (Pilot, recorded grid: no servers needed)."""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import AsyncIterator
from pathlib import Path

from textual.widgets import Input

from lobstah_core.events import ReceiptAccepted
from lobstah_core.node_view import NodeSnapshot
from textual_plotext import PlotextPlot

from lobstah_tui.app import LobstahApp
from lobstah_tui.widgets.peers import PeersPanel
from lobstah_tui.widgets.prompt import PromptPanel
from lobstah_tui.widgets.receipts import ReceiptsPanel

from .replay import ReplayNode
from .screen_text import screen_rows
from .test_app import wait_for

RECORDING = Path(__file__).parent / "recordings" / "grid.json"
NOW = json.loads(RECORDING.read_text())["now"]
LONG_ANSWER = " ".join(f"word{i}" for i in range(400))


class TalkativeNode(ReplayNode):
    async def chat_stream(self, model: str, prompt: str) -> AsyncIterator[str]:
        for word in LONG_ANSWER.split(" "):
            yield word + " "


def recorded_app(node: ReplayNode | None = None) -> LobstahApp:
    return LobstahApp(node or ReplayNode(RECORDING), clock_ms=lambda: NOW)


async def test_readable_at_80x24() -> None:
    app = recorded_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, lambda: any("→ spent" in row for row in screen_rows(app)))

        def axis_in_clock_time() -> bool:
            return any(len(re.findall(r"\d\d:\d\d:\d\d", row.split("│")[-2])) == 3
                       for row in screen_rows(app) if row.count("│") >= 2)

        # The plot is drawn on its own schedule: wait for it (bounded) rather than for a fixed
        # time, which a loaded machine overran.
        await wait_for(pilot, axis_in_clock_time)
        # The footer's keys are composed after the first frames; on a loaded machine, later.
        await wait_for(pilot, lambda: "q Quit" in screen_rows(app)[-1])
        rows = screen_rows(app)
        # Receipts keep their token columns (input+output) whatever the model's name.
        receipts = [row for row in rows if "→ spent" in row or "← earned" in row]
        assert receipts and all(re.search(r"\d+\+\d+", row) for row in receipts), receipts
        # The plot has room for its curves, and its axis is clock time.
        assert app.query_one(PlotextPlot).size.height >= 5
        assert not any("earned" in row and "┤" in row for row in rows)  # no legend over the lines
        assert "a Advertise" in rows[-1] and "q Quit" in rows[-1]


async def test_an_exclusion_that_starts_later_shows_its_countdown() -> None:
    node = ReplayNode(RECORDING)
    app = recorded_app(node)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, lambda: len(app.query_one(PeersPanel).rows) == 3)
        snapshot = await node.snapshot()
        healthy = dataclasses.replace(snapshot, peers=tuple(dataclasses.replace(p, state="healthy") for p in snapshot.peers))
        app.query_one(PeersPanel).show(healthy, NOW)
        await pilot.pause(0.1)
        app.query_one(PeersPanel).show(snapshot, NOW)  # flaky is excluded now, until NOW + 17 s
        await pilot.pause(0.1)
        assert any("excluded 17s" in row for row in screen_rows(app))


async def test_a_long_answer_wraps_and_scrolls_to_its_end() -> None:
    app = recorded_app(TalkativeNode(RECORDING))
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("p", *"hi", "enter")
        await wait_for(pilot, lambda: app.query_one(PromptPanel).text.strip() == LONG_ANSWER)
        await pilot.pause(0.2)
        rows = screen_rows(app)
        assert any("word399" in row for row in rows)  # the end is in view
        assert not any("word0 " in row for row in rows)  # the beginning scrolled away
        assert sum(bool(re.search(r"word39\d", row)) for row in rows) >= 2  # wrapped over several rows


async def test_escape_leaves_the_prompt_and_gives_the_keys_back() -> None:
    app = recorded_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("p", "a", "s")
        prompt = app.query_one("#prompt-input", Input)
        assert prompt.has_focus and prompt.value == "as"  # letters while typing
        assert "a Advertise" not in screen_rows(app)[-1] and "Leave prompt" in screen_rows(app)[-1]
        await pilot.press("escape")
        assert not prompt.has_focus
        assert "a Advertise" in screen_rows(app)[-1]
        await pilot.press("a")  # the dashboard's key again: the recording refuses to advertise
        await wait_for(pilot, lambda: bool(app._notifications))
        assert prompt.value == "as"


async def test_a_burst_of_receipts_shows_every_line_in_order() -> None:
    node = ReplayNode(RECORDING)
    app = recorded_app(node)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, lambda: any("✗ rejected" in row for row in screen_rows(app)))
        before = len(app.query_one(ReceiptsPanel).lines)
        peer = node.recording["snapshot"]["peers"][0]["pubkey"]
        for n in range(60):  # all between two frames: they are painted together
            node.bus.publish(ReceiptAccepted(NOW, peer, "demo-fast", 100 + n, 1, f"{n:032x}"))
        await wait_for(pilot, lambda: any("159+1" in row for row in screen_rows(app)))
        assert len(app.query_one(ReceiptsPanel).lines) == before + 60
        shown = [int(m) for row in screen_rows(app) for m in re.findall(r"(\d+)\+1 ", row)]
        assert shown == sorted(shown) and shown[-1] == 159, shown  # oldest first, the newest at the bottom


class RelabelledNode(ReplayNode):
    """The recording with labels that look like markup."""

    async def snapshot(self, recent: int = 50) -> NodeSnapshot:
        shot = await super().snapshot(recent)
        return dataclasses.replace(shot, peers=tuple(dataclasses.replace(p, label=f"[b]{p.label}") for p in shot.peers))


async def test_a_burst_of_snapshots_leaves_the_latest_on_screen() -> None:
    node = RelabelledNode(RECORDING)
    # The app's own snapshots (1 Hz) show the same as the last of the burst: the end state
    # does not depend on where they fall in it.
    app = LobstahApp(node, clock_ms=lambda: NOW + 6000)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, lambda: len(app.query_one(PeersPanel).rows) == 3)
        latest = await node.snapshot()
        recorded = dataclasses.replace(latest, peers=tuple(dataclasses.replace(p, label=p.label[3:]) for p in latest.peers))
        table = app.query_one(PeersPanel)
        for seconds in range(1, 6):  # snapshots between two frames; the countdown runs on
            table.show(recorded, NOW + seconds * 1000)
        table.show(latest, NOW + 6000)
        # 17 s at NOW, 6 s later; a label is shown as it is, not read as markup.
        await wait_for(pilot, lambda: any("excluded 11s" in row and "[b]flaky" in row for row in screen_rows(app)))
        assert not any("excluded 12s" in row or "excluded 16s" in row for row in screen_rows(app))
