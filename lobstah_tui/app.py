"""``lobstah-tui``: the operator's dashboard over a Node running in this process."""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

from rich.text import Text
from textual import on, work
from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.widgets import Footer, Input, Static, Switch

from lobstah_core.clock import wall_clock_ms
from lobstah_core.config import RouterSettings, Settings, WorkerSettings
from lobstah_core.demo import DemoGrid
from lobstah_core.errors import LobstahError
from lobstah_core.events import Event
from lobstah_core.identity_file import load_or_create_identity
from lobstah_core.node import EngineSettings, Node, NodeSettings
from lobstah_core.remote import RemoteNode

from .messages import GridEvent, SnapshotReady
from .widgets.balance import BalancePanel
from .widgets.peers import PeersPanel
from .widgets.prompt import PromptPanel
from .widgets.receipts import ReceiptsPanel
from .widgets.switches import SwitchesPanel

__all__ = ["LobstahApp", "main"]

#: How often arrived events are painted.
FLUSH_SECONDS = 0.033


class LobstahApp(App[None]):
    """Peers, receipts, balance and the opt-in switches of one node."""

    CSS_PATH = "lobstah.tcss"
    TITLE = "Lobstah grid"
    BINDINGS = [
        Binding("a", "toggle('advertise')", "Advertise"),
        Binding("s", "toggle('sync')", "Sync"),
        Binding("p", "focus_prompt", "Prompt"),
        Binding("q", "quit", "Quit"),
    ]

    def __init__(
        self,
        node: Node | RemoteNode,
        demo: DemoGrid | None = None,
        model: str = "demo-fast",
        clock_ms: Callable[[], int] = wall_clock_ms,
    ) -> None:
        super().__init__()
        self.node, self.demo, self.model = node, demo, model
        #: The clock exclusion countdowns are read against (fixed in snapshot tests).
        self.clock_ms = clock_ms
        self.labels: dict[str, str] = dict(demo.labels) if demo else {}
        self._arrived: list[Event] = []

    def compose(self) -> ComposeResult:
        yield Static(f"node {self.node.identity.pubkey}", id="identity")
        with Horizontal(id="top"):
            with Vertical(id="main"):
                yield PeersPanel()
                yield ReceiptsPanel(markup=True, max_lines=500)
            with Vertical(id="side"):
                yield BalancePanel()
                yield SwitchesPanel()
        yield PromptPanel()
        yield Footer()

    async def on_mount(self) -> None:
        self.watch_events()
        if self.demo is not None:
            await self.demo.start()
            self.labels.update(self.demo.labels)
            self.run_worker(self.demo.traffic(), exclusive=False, group="traffic")
        else:
            await self.node.start()
        router = self.node.router.url if self.node.router else "no router"
        self.query_one("#identity", Static).update(Text.assemble(
            "node ", (f"{self.node.identity.pubkey[:16]}…", "bold"), "  OpenAI endpoint ", (f"{router}/v1", "bold"),
        ))
        self.set_interval(1.0, self.refresh_snapshot)
        # Events are painted in batches: at 200 receipts/s one repaint per receipt would cost
        # more CPU than everything else; 30 flushes a second stay well under 100 ms.
        self.set_interval(FLUSH_SECONDS, self.flush_events)
        self.refresh_snapshot()

    async def on_unmount(self) -> None:
        if self.demo is not None:
            await self.demo.stop()
        else:
            await self.node.stop()

    @work(exclusive=True, group="events")
    async def watch_events(self) -> None:
        # The core's events become Textual messages; the panels never see the bus itself.
        async with self.node.bus.subscribe() as events:
            while True:
                self.post_message(GridEvent(await events.get()))

    @work(exclusive=True, group="snapshot")
    async def refresh_snapshot(self) -> None:
        self.post_message(SnapshotReady(await self.node.snapshot()))

    def on_grid_event(self, message: GridEvent) -> None:
        self._arrived.append(message.event)

    def flush_events(self) -> None:
        if not self._arrived:
            return
        arrived, self._arrived = self._arrived, []
        receipts, balance = self.query_one(ReceiptsPanel), self.query_one(BalancePanel)
        with self.batch_update():
            for event in arrived:
                receipts.add(event, self.labels)
                balance.add(event)

    def on_snapshot_ready(self, message: SnapshotReady) -> None:
        if not self.screen.is_mounted or not self.query(PeersPanel):
            return  # a snapshot that arrives while the app is closing
        snapshot = message.snapshot
        for peer in snapshot.peers:
            if peer.label:
                self.labels.setdefault(peer.pubkey, peer.label)
        self.query_one(PeersPanel).show(snapshot, self.clock_ms())
        self.query_one(BalancePanel).show(snapshot)
        self.query_one(SwitchesPanel).show(snapshot)

    def action_toggle(self, name: str) -> None:
        switch = self.query_one(f"#{name}", Switch)
        switch.value = not switch.value

    def action_focus_prompt(self) -> None:
        self.query_one("#prompt-input", Input).focus()

    @on(Switch.Changed)
    async def flip(self, event: Switch.Changed) -> None:
        try:
            if event.switch.id == "advertise":
                await self.node.set_advertise(event.value)
            elif event.switch.id == "sync":
                await self.node.set_sync(event.value)
        except (ValueError, LobstahError) as exc:
            self.notify(str(exc), severity="warning", title=f"{event.switch.id} stays off")
            with event.switch.prevent(Switch.Changed):
                event.switch.value = False
        self.refresh_snapshot()

    @on(Input.Submitted, "#prompt-input")
    def send_prompt(self, event: Input.Submitted) -> None:
        if event.value.strip():
            self.stream_prompt(event.value.strip())
            event.input.clear()

    @work(exclusive=True, group="prompt")
    async def stream_prompt(self, prompt: str) -> None:
        panel = self.query_one(PromptPanel)
        panel.start(prompt, self.model)
        try:
            async for piece in self.node.chat_stream(self.model, prompt):
                panel.append(piece)
        except LobstahError as exc:
            panel.fail(exc.message)


def check_router(url: str) -> None:
    """Fail early, in one line, when nothing Lobstah answers at ``url``."""
    import httpx

    try:
        httpx.get(url.rstrip("/") + "/pubkey", timeout=5).json()["pubkey"]
    except (httpx.HTTPError, ValueError, KeyError):
        raise LobstahError(f"no Lobstah router answers at {url} (start one with `lobstah-core serve`)") from None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="lobstah-tui", description="The Lobstah grid dashboard.")
    parser.add_argument("--demo", action="store_true", help="a built-in demo grid with live traffic (scratch directory)")
    parser.add_argument("--engine", choices=["ollama", "openai", "demo"], default="ollama", help="this node's worker engine")
    parser.add_argument("--no-worker", action="store_true", help="only borrow: run the router alone")
    parser.add_argument("--attach", metavar="URL", help="watch a headless node (lobstah-core serve) via its router URL")
    parser.add_argument("--model", help="model for the prompt box (default: demo-fast with demo engines)")
    parser.add_argument("--api-key", help="with --attach: the router's --api-key, if it has one")
    args = parser.parse_args(argv)
    try:
        if args.attach:
            check_router(args.attach)
            LobstahApp(RemoteNode(args.attach, api_key=args.api_key), model=args.model or "demo-fast").run()
            return 0
        if args.demo:
            with tempfile.TemporaryDirectory(prefix="lobstah-tui-demo-") as scratch:
                demo = DemoGrid(Path(scratch))
                LobstahApp(demo.node, demo).run()
            return 0
        settings = Settings.from_env(os.environ)
        identity = load_or_create_identity(settings.identity_path)
        node = Node(
            NodeSettings(router=RouterSettings(), worker=None if args.no_worker else WorkerSettings(),
                         engine=EngineSettings(name=args.engine)),
            identity, settings.identity_path, settings.home,
        )
        LobstahApp(node, model=args.model or ("demo-fast" if args.engine == "demo" else "llama3.2:3b")).run()
    except LobstahError as exc:
        print(f"lobstah-tui: error: {exc.message}", file=sys.stderr)
        return 1
    return 0
