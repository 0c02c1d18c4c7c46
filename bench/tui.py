"""Dashboard benchmark: 1,000 peers and 200 receipts/s through the bus, for 10 s.

    python bench/tui.py [--peers 1000] [--rate 200] [--seconds 10] [--json]

A real Node (router only) holds the peers (their URLs lead nowhere, so its background probes
fail fast, as they would for dead peers); the app runs headless at 120x40. Latency is measured
from publishing an event on the bus to the receipts panel having written it (the next frame
paints it). CPU is this process's CPU time over wall time: the app, the node and the feeder.
Targets (issue 6): event to screen < 100 ms; CPU < 0.5 core.

The same run first measures a baseline: the same node and feed with only a receipts panel on
screen, flushed as often as the dashboard flushes, the garbage collector tuned the same way. Its figures are the floor of this machine
at this moment (the node's own probes, Textual painting a scrolling log); the dashboard's are
given as ratios to them too, which stay comparable when others load the machine.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from textual.app import App, ComposeResult

from lobstah_core.config import RouterSettings
from lobstah_core.events import Event, ReceiptAccepted
from lobstah_core.identity_file import load_or_create_identity
from lobstah_core.node import Node, NodeSettings
from lobstah_core.protocol import Identity
from lobstah_core.router.peers import Peer, PeerStore
from lobstah_tui.app import FLUSH_SECONDS, LobstahApp, settle_gc
from lobstah_tui.widgets.receipts import ReceiptsPanel


class ReceiptsOnly(App[None]):
    """The baseline: a node's events written to a receipts panel, and nothing else."""

    def __init__(self, node: Node) -> None:
        super().__init__()
        self.node = node
        self.arrived: list[Event] = []

    def compose(self) -> ComposeResult:
        yield ReceiptsPanel(max_lines=500)

    async def on_mount(self) -> None:
        await self.node.start()
        settle_gc()  # as the dashboard does
        self.run_worker(self.watch_events())
        self.set_interval(FLUSH_SECONDS, self.flush_events)

    async def on_unmount(self) -> None:
        await self.node.stop()

    async def watch_events(self) -> None:
        async with self.node.bus.subscribe() as events:
            while True:
                event = await events.get()  # before naming the list: a flush may swap it meanwhile
                self.arrived.append(event)

    def flush_events(self) -> None:
        panels = self.query(ReceiptsPanel)  # none while run_test takes the screen down
        if self.arrived and panels:
            arrived, self.arrived = self.arrived, []
            panels.first().add(arrived, {})


async def run(peers: int, rate: float, seconds: float, make_app: Callable[[Node], App[None]]) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as scratch:
        home = Path(scratch)
        pubkeys = [Identity.from_seed(n.to_bytes(32, "big")).pubkey for n in range(1, peers + 1)]
        PeerStore(home / "peers.json").save(
            [Peer(pubkey=p, url=f"http://127.0.0.1:9/{n}", label=f"peer-{n}") for n, p in enumerate(pubkeys)])
        identity = load_or_create_identity(home / "identity.json")
        node = Node(NodeSettings(router=RouterSettings(port=0), worker=None), identity, home / "identity.json", home)
        app = make_app(node)
        app.tune_gc = True  # as lobstah-tui does
        latencies: list[float] = []
        published: dict[str, float] = {}
        panel_add = ReceiptsPanel.add

        def timed_add(panel: ReceiptsPanel, events, labels) -> None:  # type: ignore[no-untyped-def]
            panel_add(panel, events, labels)
            written = time.perf_counter()
            for event in events:
                sent = published.pop(getattr(event, "nonce", ""), None)
                if sent is not None:
                    latencies.append(written - sent)

        ReceiptsPanel.add = timed_add  # type: ignore[method-assign]
        async with app.run_test(size=(120, 40)) as pilot:
            await pilot.pause(2)  # the node is up and the first snapshot painted
            cpu0, wall0 = time.process_time(), time.perf_counter()
            count = int(rate * seconds)
            for n in range(count):
                nonce = f"{n:032x}"
                published[nonce] = time.perf_counter()
                node.bus.publish(ReceiptAccepted(int(time.time() * 1000), pubkeys[n % peers], "demo-fast", 10, 20, nonce))
                delay = wall0 + (n + 1) / rate - time.perf_counter()
                await asyncio.sleep(max(delay, 0))
            await pilot.pause(0.5)
            cpu = (time.process_time() - cpu0) / (time.perf_counter() - wall0)
        ReceiptsPanel.add = panel_add  # type: ignore[method-assign]
    latencies.sort()
    return {
        "events": count,
        "seen": len(latencies),
        "latency_p50_ms": round(statistics.median(latencies) * 1000, 1),
        "latency_p99_ms": round(latencies[int(len(latencies) * 0.99) - 1] * 1000, 1),
        "cpu_cores": round(cpu, 2),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--peers", type=int, default=1000)
    parser.add_argument("--rate", type=float, default=200)
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    baseline = asyncio.run(run(args.peers, args.rate, args.seconds, ReceiptsOnly))
    figures = asyncio.run(run(args.peers, args.rate, args.seconds, LobstahApp))
    figures |= {f"{key}_ratio": round(figures[key] / baseline[key], 2)
                for key in ("latency_p50_ms", "latency_p99_ms", "cpu_cores") if baseline[key]}
    if args.json:
        print(json.dumps({"baseline": baseline, "dashboard": figures}))
    else:
        print(f"baseline (receipts panel only, same node and feed): {baseline['seen']}/{baseline['events']} shown, "
              f"p50 {baseline['latency_p50_ms']} ms, "
              f"p99 {baseline['latency_p99_ms']} ms, CPU {baseline['cpu_cores']} cores")
        print(f"{figures['seen']}/{figures['events']} receipts shown; event to panel p50 {figures['latency_p50_ms']} ms, "
              f"p99 {figures['latency_p99_ms']} ms (x{figures['latency_p99_ms_ratio']} the baseline; target < 100 ms)")
        print(f"CPU {figures['cpu_cores']} cores (x{figures['cpu_cores_ratio']}; target < 0.5) "
              f"with {args.peers} peers at {args.rate:.0f} receipts/s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
