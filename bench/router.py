"""Router benchmark: direct to a worker, through a bare aiohttp pass-through proxy (the floor of
this stack), and through our router, measured side by side in one run.

    python bench/router.py [--requests 1000] [--seconds 10] [--also CHECKOUT ...] [--json]

One demo worker (zero delay) serves everything; each path runs in its own process and this
process generates the load. Reported: added latency over direct (p50) at concurrency 1,
plain and streamed (time to first token), with each path's own p99 (a difference of two
noisy tails says little); throughput at concurrency 32. Both are taken in turns across the
paths (latency: one request per path in turn, in a shuffled order; throughput: ten turns of a
second, in a shuffled order), so that every path sees the same moments of a noisy machine. Targets (issue 4):
router overhead <= 1.3x the bare proxy's; router throughput >= 0.8x the bare proxy's.
The router does strictly more than the bare proxy: it picks a peer, signs the request, verifies
the Ed25519 receipt and writes it to its ledger. The bare proxy runs on the event loop our
servers run on (uvloop where it is installed), so the ratio compares the work, not the loops;
a router from an ``--also`` checkout runs on whatever loop that checkout chose.

``--also CHECKOUT`` adds the router of another checkout of this repository (a git worktree, say,
with a change to try) to the same rotation: an A/B in one run, where two separate runs would
differ by more than the change.

Every path reaches the worker with a signed request ([ext] request signing), so the worker does
the same work on all three and the comparison is of the middle alone: direct and bare-proxy
requests are signed by this process with the router's identity before their clock starts (the
bare proxy passes the headers through); router requests go out unsigned and the router signs
them on its own time.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import random
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import aiohttp
from _harness import free_port, median_interval, seed_credit, start

from lobstah_core.identity_file import load_or_create_identity
from lobstah_core.ledger import Ledger
from lobstah_core.protocol import Identity
from lobstah_core.protocol.request_signing import sign_request
from lobstah_core.router.peers import Peer, PeerStore

BARE_PROXY = """
import asyncio
import sys
import aiohttp
from aiohttp import web
try:  # the event loop our servers run on (lobstah_core/tasks.py run), for a like-for-like floor
    import uvloop
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
except ImportError:
    pass
UPSTREAM = sys.argv[2]
async def session_ctx(app):
    app["session"] = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0, limit_per_host=64))
    yield
    await app["session"].close()
async def forward(request):
    body = await request.read()
    headers = {name: value for name, value in request.headers.items() if name.lower().startswith(("content-type", "x-lobstah-"))}
    async with request.app["session"].post(UPSTREAM + request.path, data=body, headers=headers) as upstream:
        response = web.StreamResponse(status=upstream.status, headers={"Content-Type": upstream.headers.get("Content-Type", "application/json")})
        await response.prepare(request)
        async for chunk in upstream.content.iter_any():
            await response.write(chunk)
        await response.write_eof()
        return response
app = web.Application()
app.cleanup_ctx.append(session_ctx)
app.router.add_post("/v1/chat/completions", forward)
web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), print=None)
"""

CHAT = {"model": "demo-fast", "messages": [{"role": "user", "content": "benchmark the router"}], "max_tokens": 16}
PATH = "/v1/chat/completions"


@dataclass(frozen=True)
class Target:
    url: str
    #: Signs direct and bare-proxy requests as the router would; ``None``: the router signs.
    signer: Identity | None = None

    def request(self, stream: bool) -> tuple[bytes, dict[str, str]]:
        body = json.dumps({**CHAT, "stream": stream}).encode()
        headers = {"Content-Type": "application/json"}
        if self.signer is not None:
            headers.update(sign_request(self.signer, "POST", PATH, body, int(time.time() * 1000)))
        return body, headers


async def one(session: aiohttp.ClientSession, target: Target, stream: bool) -> tuple[float, float]:
    """(seconds to the first body byte, seconds in all) for one completion."""
    body, headers = target.request(stream)
    started = time.perf_counter()
    async with session.post(target.url, data=body, headers=headers) as response:
        if response.status != 200:
            raise SystemExit(f"{target.url} answered {response.status}: {await response.text()}")
        first = None
        async for _ in response.content.iter_any():
            first = first or time.perf_counter()
    done = time.perf_counter()
    return (first or done) - started, done - started


async def latencies(targets: dict[str, Target], stream: bool, count: int) -> dict[str, list[float]]:
    """``count`` sequential completions per target, one per target in turn, in a shuffled order
    each turn: every path sees the same moments of a noisy machine, and none is always first
    (taking blocks of requests in a fixed order made the later router read slower)."""
    timings: dict[str, list[float]] = {name: [] for name in targets}
    order = list(targets)
    shuffle = random.Random(17).shuffle
    async with contextlib.AsyncExitStack() as stack:
        sessions = {name: await stack.enter_async_context(aiohttp.ClientSession()) for name in targets}
        for name, target in targets.items():
            for _ in range(20):
                await one(sessions[name], target, stream)  # warm the pools
        for _ in range(count):
            shuffle(order)
            for name in order:
                first, total = await one(sessions[name], targets[name], stream)
                # Streams are judged by time to first token, plain requests by the whole answer.
                timings[name].append(first if stream else total)
    return timings


async def throughputs(targets: dict[str, Target], stream: bool, seconds: float, concurrency: int = 32,
                      rounds: int = 10) -> dict[str, list[float]]:
    """Completions per second through each target with ``concurrency`` clients, in ``rounds``
    turns of ``seconds / rounds`` each (a shuffled order each turn), so that every path sees the
    same moments of a noisy machine: each target's rate in each turn."""
    rates: dict[str, list[float]] = {name: [] for name in targets}
    order = list(targets)
    shuffle = random.Random(23).shuffle
    async with contextlib.AsyncExitStack() as stack:
        sessions = {name: await stack.enter_async_context(
            aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=concurrency))) for name in targets}
        for _ in range(rounds):
            shuffle(order)
            for name in order:
                started = time.perf_counter()
                done = await load(sessions[name], targets[name], stream, seconds / rounds, concurrency)
                rates[name].append(done / (time.perf_counter() - started))
    return rates


async def load(session: aiohttp.ClientSession, target: Target, stream: bool, seconds: float, concurrency: int) -> int:
    """Completions done by ``concurrency`` clients in a loop for ``seconds``."""
    deadline = time.perf_counter() + seconds
    counts = [0] * concurrency

    async def client(index: int) -> None:
        while time.perf_counter() < deadline:
            await one(session, target, stream)
            counts[index] += 1

    await asyncio.gather(*(client(index) for index in range(concurrency)))
    return sum(counts)


def percentile(sorted_values: list[float], fraction: float) -> float:
    return sorted_values[min(len(sorted_values) - 1, int(len(sorted_values) * fraction))]


async def measure(targets: dict[str, Target], args: argparse.Namespace) -> dict[str, dict[str, float]]:
    figures: dict[str, dict[str, float]] = {}
    for mode, stream in (("plain", False), ("streamed", True)):
        turns = await latencies(targets, stream, args.requests)
        lat = {name: sorted(values) for name, values in turns.items()}
        direct_p50, direct_p99 = statistics.median(lat["direct"]), percentile(lat["direct"], 0.99)
        turn_rates = await throughputs(targets, stream, args.seconds)
        rates = {name: statistics.mean(values) for name, values in turn_rates.items()}  # mean of the turns' rates
        for name in proxies(targets):
            figures[f"{mode}/{name}"] = {
                "added_p50_ms": round((statistics.median(lat[name]) - direct_p50) * 1000, 3),
                "p99_ms": round(percentile(lat[name], 0.99) * 1000, 3),
                "per_s_c32": round(rates[name]),
            }
        figures[f"{mode}/direct"] = {"p50_ms": round(direct_p50 * 1000, 3), "p99_ms": round(direct_p99 * 1000, 3),
                                     "per_s_c32": round(rates["direct"])}
        bare = figures[f"{mode}/bare"]
        for name in routers(targets):
            router = figures[f"{mode}/{name}"]
            figures[ratios_key(mode, name)] = {
                "overhead_vs_bare": round(router["added_p50_ms"] / max(bare["added_p50_ms"], 1e-3), 2),
                "throughput_vs_bare": round(router["per_s_c32"] / bare["per_s_c32"], 2),
                **paired_ms(turns, name, "bare"),
            }
            if name != "router":  # another checkout's router against this one's, turn by turn
                figures[ratios_key(mode, name)] |= paired_ms(turns, "router", name, "router_minus_it")
                figures[ratios_key(mode, name)] |= paired_ratio(turn_rates, "router", name, "router_over_it_per_s")
    return figures


def paired_ms(turns: dict[str, list[float]], name: str, baseline: str, key: str | None = None) -> dict[str, list[float]]:
    """The median of ``name``'s time minus ``baseline``'s in the same turn, with its 95%
    interval, in ms (``[low, median, high]``): a comparison that a machine's drifting load, felt
    by both requests of a turn alike, disturbs far less than a difference of two medians."""
    differences = [(a - b) * 1000 for a, b in zip(turns[name], turns[baseline], strict=True)]
    low, high = median_interval(differences)
    return {key or f"minus_{baseline}_ms": [round(low, 3), round(statistics.median(differences), 3), round(high, 3)]}


def paired_ratio(rates: dict[str, list[float]], name: str, baseline: str, key: str) -> dict[str, list[float]]:
    """The median of ``name``'s throughput over ``baseline``'s in the same turn, with its 95%
    interval (``[low, median, high]``): a throughput's counterpart of :func:`paired_ms`."""
    # A turn in which the baseline completed nothing (a stalled router) has no ratio.
    ratios = [a / b for a, b in zip(rates[name], rates[baseline], strict=True) if b > 0] or [math.nan]
    low, high = median_interval(ratios)
    return {key: [round(low, 3), round(statistics.median(ratios), 3), round(high, 3)]}


def proxies(targets: dict[str, Target]) -> list[str]:
    """Every path but direct: the bare proxy, then the routers."""
    return [name for name in targets if name != "direct"]


def routers(targets: dict[str, Target]) -> list[str]:
    return [name for name in targets if name.startswith("router")]


def ratios_key(mode: str, router: str) -> str:
    return f"{mode}/ratios" if router == "router" else f"{mode}/{router}/ratios"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=1000, help="sequential requests per path for latency")
    parser.add_argument("--seconds", type=float, default=10.0,
                        help="duration of each path's throughput run, taken in ten turns")
    parser.add_argument("--also", action="append", default=[], type=Path, metavar="CHECKOUT",
                        help="also measure the router of another checkout, in the same rotation (repeatable)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    others = {f"router@{checkout.resolve().name}": checkout.resolve() for checkout in args.also}
    if len(others) < len(args.also):
        parser.error("give each --also checkout a directory name of its own")
    for checkout in others.values():
        if not (checkout / "lobstah_core" / "__init__.py").is_file():
            parser.error(f"{checkout} is not a checkout of this repository (no lobstah_core/ in it)")

    ports = {name: free_port() for name in ("worker", "bare", "router", *others)}
    with tempfile.TemporaryDirectory() as scratch:
        worker_home, router_home = Path(scratch) / "worker", Path(scratch) / "router"
        router_id = load_or_create_identity(router_home / "identity.json")
        worker_id = load_or_create_identity(worker_home / "identity.json")
        seed_credit(worker_home, router_id)
        worker_url = f"http://127.0.0.1:{ports['worker']}"
        PeerStore(router_home / "peers.json").add(Peer(pubkey=worker_id.pubkey, url=worker_url))
        homes = {"router": router_home} | {name: copy_home(router_home, Path(scratch) / name) for name in others}
        python = sys.executable
        processes = [
            start([python, "-m", "lobstah_core", "worker", "start", "--engine", "demo", "--port", str(ports["worker"]),
                   "--demo-delay", "0", "--demo-tps", "0", "--concurrency", "64", "--max-queue", "512"],
                  ports["worker"], {**os.environ, "LOBSTAH_HOME": str(worker_home)}),
            start([python, "-c", BARE_PROXY, str(ports["bare"]), worker_url], ports["bare"], dict(os.environ)),
        ]
        try:
            for name, home in homes.items():
                processes.append(start_router(ports[name], home, others.get(name)))
            targets = {
                "direct": Target(f"{worker_url}{PATH}", router_id),
                "bare": Target(f"http://127.0.0.1:{ports['bare']}{PATH}", router_id),
            } | {name: Target(f"http://127.0.0.1:{ports[name]}{PATH}") for name in homes}
            figures = asyncio.run(measure(targets, args))
        finally:
            for process in processes:
                process.send_signal(signal.SIGTERM)
                process.wait(timeout=20)
        for name, home in homes.items():
            with Ledger(home / "ledger.sqlite3") as ledger:
                figures[f"{name}/ledger"] = {"receipts_accepted": ledger.totals().receipts}

    if args.json:
        print(json.dumps(figures))
    else:
        report(figures, list(targets))
    return 0


def copy_home(source: Path, home: Path) -> Path:
    """A router home with the same identity and peers as ``source`` (its own ledger)."""
    home.mkdir()
    for name in ("identity.json", "peers.json"):
        shutil.copy2(source / name, home / name)
    return home


def start_router(port: int, home: Path, checkout: Path | None) -> subprocess.Popen[bytes]:
    """This checkout's router, or ``checkout``'s: run from there, its package comes first."""
    if checkout is not None:
        found = subprocess.run([sys.executable, "-c", "import lobstah_core; print(lobstah_core.__file__)"],
                               cwd=checkout, capture_output=True, text=True, check=True).stdout.strip()
        if not Path(found).is_relative_to(checkout):
            raise SystemExit(f"a router started in {checkout} would run {found}, not that checkout's code")
    return start([sys.executable, "-m", "lobstah_core", "router", "start", "--port", str(port)],
                 port, {**os.environ, "LOBSTAH_HOME": str(home)}, cwd=checkout)


def report(figures: dict[str, dict[str, float]], names: list[str]) -> None:
    width = max(map(len, names))
    for mode in ("plain", "streamed"):
        label = "time to first token" if mode == "streamed" else "whole answer"
        direct = figures[f"{mode}/direct"]
        print(f"{mode} ({label}); direct p50 {direct['p50_ms']} ms, p99 {direct['p99_ms']} ms, "
              f"{direct['per_s_c32']} req/s at c=32")
        for name in names[1:]:
            row = figures[f"{mode}/{name}"]
            print(f"  {name:<{width}} added p50 {row['added_p50_ms']:>7} ms  (p99 {row['p99_ms']:>7} ms)  "
                  f"{row['per_s_c32']:>5} req/s at c=32")
        for name in names[2:]:
            ratios = figures[ratios_key(mode, name)]
            low, median, high = ratios["minus_bare_ms"]
            print(f"  {name} overhead {ratios['overhead_vs_bare']}x the bare proxy's (target <= 1.3), "
                  f"throughput {ratios['throughput_vs_bare']}x (target >= 0.8); "
                  f"turn by turn {median:+.3f} ms over the bare proxy [95%: {low:+.3f}, {high:+.3f}]")
            if "router_minus_it" in ratios:
                low, median, high = ratios["router_minus_it"]
                print(f"  router minus {name}, turn by turn: {median:+.3f} ms [95%: {low:+.3f}, {high:+.3f}]")
                low, median, high = ratios["router_over_it_per_s"]
                print(f"  router throughput over {name}'s, turn by turn: {median:.3f}x [95%: {low:.3f}, {high:.3f}]")
    for name in names[2:]:
        print(f"receipts accepted by {name}: {figures[f'{name}/ledger']['receipts_accepted']}")


if __name__ == "__main__":
    sys.exit(main())
