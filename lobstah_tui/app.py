"""``lobstah-tui``: the operator's dashboard over a Node running in this process."""

from __future__ import annotations

import argparse
import errno
import gc
import os
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

from pydantic import ValidationError
from rich.text import Text
from textual import on, work
from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.widgets import Footer, Input, Static, Switch

from lobstah_core.clock import wall_clock_ms
from lobstah_core.cli.common import OneLineParser, first_line, router_url
from lobstah_core.cli.node_flags import add_node_flags, node_settings, node_warnings
from lobstah_core.config import Settings
from lobstah_core.demo import DEMO_WORKERS, REAL_MODEL_WORKER, DemoGrid
from lobstah_core.engines.llamacpp import DEFAULT_MODEL_NAME, check_setup
from lobstah_core.errors import LobstahError, SwitchRefused, describe_os_error
from lobstah_core.events import Event
from lobstah_core.identity_file import load_or_create_identity
from lobstah_core.node import Node
from lobstah_core.node_view import NodeView
from lobstah_core.remote import RemoteNode

from .messages import SnapshotReady
from .screen import DashboardScreen
from .widgets.balance import BalancePanel
from .widgets.batches import BatchesPanel
from .widgets.peers import PeersPanel
from .widgets.prompt import PromptPanel
from .widgets.receipts import ReceiptsPanel
from .widgets.switches import SwitchesPanel

__all__ = ["LobstahApp", "build_parser", "main", "settle_gc"]

#: How often arrived events are painted: 20 times a second (30 cost bench/tui.py 0.48-0.50 cores
#: against 0.39-0.43, for p50 20 against 29 ms from event to panel; both well under 100 ms).
FLUSH_SECONDS = 0.05
#: Allocations between young garbage collections (CPython's default: 700). Painting allocates
#: hundreds of thousands of short-lived objects a second (strips, segments); with the default,
#: enough of them outlived a young collection that a full one came every 2-3 s, and at 250,000
#: live objects each stopped the screen for 200-400 ms (bench/tui.py): the worst latency there was.
GC_YOUNG_THRESHOLD = 10_000


def settle_gc() -> None:
    """Tune the garbage collector for a screen that paints many times a second; call it once
    the app is up. What exists then (modules, the node, the screen) lives as long as the app, so
    full collections need not walk it again (it halved their pauses); and young collections
    wait for ``GC_YOUNG_THRESHOLD`` allocations, so that full ones come rarely. One collection
    first, so that no garbage is frozen with it (frozen objects are never collected).
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(GC_YOUNG_THRESHOLD, *gc.get_threshold()[1:])


class LobstahApp(App[None]):
    """Peers, batches, receipts, balance and the opt-in switches of one node."""

    CSS_PATH = "lobstah.tcss"
    TITLE = "Lobstah grid"
    #: Whether to call :func:`settle_gc` once up: ``lobstah-tui`` and bench/tui.py do; an app
    #: run inside another program (the tests) leaves that program's collector alone.
    tune_gc = False
    BINDINGS = [
        Binding("a", "toggle('advertise')", "Advertise"),
        Binding("s", "toggle('sync')", "Sync"),
        Binding("p", "focus_prompt", "Prompt"),
        Binding("q", "quit", "Quit"),
    ]

    def __init__(
        self,
        node: NodeView,
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
        #: Why the node could not start (one line), for ``main`` to print after the screen is gone.
        self.startup_error: str | None = None
        #: Lines the operator should read once the screen is up (e.g. an unreachable announce URL).
        self.warnings: list[str] = []
        self._receipts = ReceiptsPanel(max_lines=500)

    def get_default_screen(self) -> DashboardScreen:
        return DashboardScreen(id="_default")

    def compose(self) -> ComposeResult:
        yield Static(f"node {self.node.pubkey}", id="identity")
        with Horizontal(id="top"):
            with Vertical(id="main"):
                yield PeersPanel()
                yield BatchesPanel(self.labels)
                yield self._receipts
            with Vertical(id="side"):
                yield BalancePanel()
                yield SwitchesPanel()
        yield PromptPanel()
        yield Footer()

    async def on_mount(self) -> None:
        self.watch_events()
        try:
            if self.demo is not None:
                await self.demo.start()
                self.labels.update(self.demo.labels)
                self.run_worker(self.demo.traffic(), exclusive=False, group="traffic")
            else:
                await self.node.start()
        except (OSError, LobstahError) as exc:
            # A port taken or a read-only home: leave before drawing anything, and let main()
            # print the reason on the terminal the screen gave back.
            self.startup_error = describe_os_error(exc) if isinstance(exc, OSError) else exc.message
            if isinstance(exc, OSError) and exc.errno == errno.EADDRINUSE:
                self.startup_error += "; a node already running there can be watched with --attach URL"
            self.exit(return_code=1)
            return
        router = self.node.router_url or "no router"
        self.query_one("#identity", Static).update(Text.assemble(
            "node ", (f"{self.node.pubkey[:16]}…", "bold"), "  OpenAI endpoint ", (f"{router}/v1", "bold"),
        ))
        for warning in self.warnings:
            self.notify(warning, severity="warning", timeout=30)
        if self.tune_gc:
            settle_gc()
        self.set_interval(1.0, self.refresh_snapshot)
        # Events are painted in batches: at 200 receipts/s one repaint per receipt would cost
        # more CPU than everything else; 30 flushes a second stay well under 100 ms.
        self.set_interval(FLUSH_SECONDS, self.flush_events)
        self.refresh_snapshot()
        self.load_batches()

    async def on_unmount(self) -> None:
        # Also after a failed start: what did start (a worker before a taken router port) stops.
        if self.demo is not None:
            await self.demo.stop()
        else:
            await self.node.stop()

    @work(exclusive=True, group="events")
    async def watch_events(self) -> None:
        # The core's events wait here for the next flush; the panels never see the bus itself.
        # The worker runs in the app's own loop, so it appends directly: one Textual message
        # per event (200 a second in bench/tui.py) cost more CPU than the flushes they waited for.
        async with self.node.bus.subscribe() as events:
            while True:
                event = await events.get()  # before naming the list: a flush may swap it meanwhile
                self._arrived.append(event)

    @work(exclusive=True, group="snapshot")
    async def refresh_snapshot(self) -> None:
        # No recent receipts: the log shows them from events; the ledger need not read them each second.
        self.post_message(SnapshotReady(await self.node.snapshot(recent=0)))

    @work(exclusive=True, group="batches")
    async def load_batches(self) -> None:
        batches = await self.node.batches()
        if self._showing():
            self.query_one(BatchesPanel).load(batches)

    def _showing(self) -> bool:
        # Textual's run_test (and any shutdown from outside the app's own task) prunes the
        # screens before the app's message queue drains: a snapshot or a flush tick already
        # queued is then handled with the panels removed, or with no screen on the stack at
        # all (where `self.screen` raises). A removed panel is no longer attached to the app,
        # nor is any once the app exits; asking that of the panel walks its four ancestors,
        # where a query walked the whole screen (a fifth of each flush in bench/tui.py).
        return bool(self.screen_stack) and self._receipts.is_attached

    def flush_events(self) -> None:
        if not self._arrived or not self._showing():
            return
        arrived, self._arrived = self._arrived, []
        receipts, balance = self.query_one(ReceiptsPanel), self.query_one(BalancePanel)
        with self.batch_update():
            receipts.add(arrived, self.labels)
            for event in arrived:
                balance.add(event)
            self.query_one(BatchesPanel).take(arrived)

    def on_snapshot_ready(self, message: SnapshotReady) -> None:
        if not self._showing():
            return
        snapshot = message.snapshot
        for peer in snapshot.peers:
            if peer.label:
                self.labels.setdefault(peer.pubkey, peer.label)
        self.query_one(PeersPanel).show(snapshot, self.clock_ms())
        self.query_one(BalancePanel).show(snapshot, self.clock_ms())
        self.query_one(SwitchesPanel).show(snapshot)

    def action_toggle(self, name: str) -> None:
        switch = self.query_one(f"#{name}", Switch)
        switch.value = not switch.value

    def action_focus_prompt(self) -> None:
        self.query_one("#prompt-input", Input).focus()

    @on(Switch.Changed)
    async def flip(self, event: Switch.Changed) -> None:
        try:
            if self.demo is not None and event.value:
                raise SwitchRefused(f"the demo grid stays on this machine; to {event.switch.id}, run "
                                    + ("lobstah-tui --announce-to TRACKER --announce-url URL"
                                       if event.switch.id == "advertise" else "lobstah-tui --sync-from TRACKER"))
            if event.switch.id == "advertise":
                await self.node.set_advertise(event.value)
            elif event.switch.id == "sync":
                await self.node.set_sync(event.value)
        except LobstahError as exc:
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
                if not self._showing():
                    return  # the app is closing while the answer still streams
                panel.append(piece)
        except LobstahError as exc:
            panel.fail(exc.message)


def check_router(url: str) -> None:
    """Fail early, in one line, when no Lobstah router answers at ``url``.

    Raises:
        LobstahError: nothing answers, something else answers, or a worker answers (its
            ``GET /`` says ``lobstah-worker``; the router of the same node says ``lobstah-router``).
    """
    import httpx

    try:
        what = httpx.get(url.rstrip("/") + "/", timeout=5).text.strip()
    except httpx.HTTPError:
        what = ""
    if what == "lobstah-worker":
        raise LobstahError(f"{url} is a worker; attach to its node's router instead (port 17475 by default)")
    if what != "lobstah-router":
        raise LobstahError(f"no Lobstah router answers at {url} (start one with `lobstah-core serve`)")


def _run(app: LobstahApp) -> int:
    app.tune_gc = True  # the dashboard's own process: its collector is ours to tune
    app.run()
    if app.startup_error is not None:
        print(f"lobstah-tui: error: {app.startup_error}", file=sys.stderr)
        return 1
    return 0


def build_parser() -> argparse.ArgumentParser:
    """``lobstah-tui``'s options: its own, and those of a node as ``serve`` takes them."""
    parser = OneLineParser(prog="lobstah-tui", description="The Lobstah grid dashboard.")
    parser.add_argument("--demo", action="store_true", help="a built-in demo grid with live traffic (scratch directory)")
    parser.add_argument("--attach", metavar="URL", type=router_url, help="watch a headless node (lobstah-core serve) via its router URL")
    parser.add_argument("--model", help="model for the prompt box (default: demo-fast with demo engines)")
    parser.add_argument("--api-key", help="with --attach: the router's --api-key, if it has one")
    add_node_flags(parser)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run ``lobstah-tui``; returns the exit code (1 with one line on stderr when it cannot start)."""
    args = build_parser().parse_args(argv)
    try:
        if args.engine == "llamacpp":
            check_setup()  # inside the app, a missing extra would end in a traceback
        if args.attach:
            check_router(args.attach)
            return _run(LobstahApp(RemoteNode(args.attach, api_key=args.api_key), model=args.model or "demo-fast"))
        if args.demo:
            with tempfile.TemporaryDirectory(prefix="lobstah-tui-demo-") as scratch:
                real = args.engine == "llamacpp"
                demo = DemoGrid(Path(scratch), DEMO_WORKERS + (REAL_MODEL_WORKER,) if real else DEMO_WORKERS,
                                router_port=args.router_port or 0)
                return _run(LobstahApp(demo.node, demo, model=args.model or (DEFAULT_MODEL_NAME if real else "demo-fast")))
        try:
            settings_of_node = node_settings(args)
        except (ValidationError, ValueError) as exc:
            raise LobstahError(first_line(exc)) from None
        settings = Settings.from_env(os.environ)
        identity = load_or_create_identity(settings.identity_path)
        node = Node(settings_of_node, identity, settings.identity_path, settings.home)
        app = LobstahApp(node, model=args.model or _prompt_model(args.engine))
        app.warnings = node_warnings(settings_of_node)
        return _run(app)
    except LobstahError as exc:
        print(f"lobstah-tui: error: {exc.message}", file=sys.stderr)
    except OSError as exc:
        print(f"lobstah-tui: error: {describe_os_error(exc)}", file=sys.stderr)
    return 1


def _prompt_model(engine: str) -> str:
    """The prompt box's model when none is given: what the engine serves by default."""
    return {"demo": "demo-fast", "llamacpp": DEFAULT_MODEL_NAME}.get(engine, "llama3.2:3b")
