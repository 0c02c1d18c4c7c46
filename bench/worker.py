"""Worker benchmark: completions/s with the demo engine at zero delay, plain and streamed,
and the cost of one streamed chunk, beside a bare aiohttp server (the floor of this stack).

    python bench/worker.py [--seconds 5] [--concurrency 16] [--also CHECKOUT ...] [--json]

Both servers run in their own process; this process is the load generator (aiohttp client).
The bare server answers each POST with a fixed chat.completion and signs nothing, so the
ratio "worker / bare" is what the worker's work costs: validation, admission, the demo engine,
the Ed25519 receipt and its ledger write (committed before the answer leaves: issue 15).

``--also CHECKOUT`` adds the worker of another checkout of this repository (say, the commit
before a change) to the same run: every target's throughput is taken in turns (five rounds),
so that all see the same moments of a noisy machine, and the report gives each worker's ratio
to this checkout's.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import aiohttp
from _harness import free_port, seed_credit, start

from lobstah_core.ledger import Ledger
from lobstah_core.protocol import Identity

BARE_SERVER = """
import sys
from aiohttp import web
BODY = {"id": "x", "object": "chat.completion", "created": 0, "model": "demo-fast",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "hi"}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 3, "completion_tokens": 8, "total_tokens": 11}}
async def chat(request):
    await request.json()
    return web.json_response(BODY)
app = web.Application()
app.router.add_post("/v1/chat/completions", chat)
web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), print=None)
"""

REQUESTER = Identity.from_seed(b"B" * 32)
HEADERS = {"x-lobstah-requester": REQUESTER.pubkey}
CHAT = {"model": "demo-fast", "messages": [{"role": "user", "content": "benchmark the worker"}], "max_tokens": 8}






async def load(url: str, body: dict, seconds: float, concurrency: int) -> float:
    """Completed requests per second over ``seconds`` with ``concurrency`` clients."""
    done = 0
    deadline = time.perf_counter() + seconds
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def client() -> None:
            nonlocal done
            while time.perf_counter() < deadline:
                async with session.post(url, json=body, headers=HEADERS) as response:
                    await response.read()
                    if response.status != 200:
                        raise SystemExit(f"{url} answered {response.status}")
                done += 1

        started = time.perf_counter()
        await asyncio.gather(*(client() for _ in range(concurrency)))
        return done / (time.perf_counter() - started)


async def stream_seconds(url: str, tokens: int, repeats: int) -> float:
    """Median seconds for one streamed completion of ``tokens`` chunks, one client."""
    timings = []
    async with aiohttp.ClientSession() as session:
        for _ in range(repeats):
            started = time.perf_counter()
            body = {**CHAT, "stream": True, "max_tokens": tokens}
            async with session.post(url, json=body, headers=HEADERS) as response:
                async for _ in response.content:
                    pass
            timings.append(time.perf_counter() - started)
    return sorted(timings)[len(timings) // 2]


async def rates(targets: dict[str, str], body: dict, seconds: float, concurrency: int, rounds: int = 5) -> dict[str, float]:
    """Completions per second of each target: the mean of ``rounds`` turns of equal length."""
    total = dict.fromkeys(targets, 0.0)
    for _ in range(rounds):
        for name, url in targets.items():
            total[name] += await load(url, body, seconds / rounds, concurrency)
    return {name: total[name] / rounds for name in targets}


async def measure(args: argparse.Namespace, targets: dict[str, str]) -> dict[str, float]:
    for url in targets.values():  # warm up every server
        await load(url, CHAT, 1, args.concurrency)
    plain = await rates(targets, CHAT, args.seconds, args.concurrency)
    streamed = await rates(targets, {**CHAT, "stream": True}, args.seconds, args.concurrency)
    short = await stream_seconds(targets["worker"], 1, 40)
    long = await stream_seconds(targets["worker"], 513, 40)
    figures = {
        "bare_per_s": round(plain["bare"]),
        "us_per_chunk": round((long - short) / 512 * 1e6, 1),
    }
    for name in targets:
        if name == "bare":
            continue
        figures[f"{name}_plain_per_s"] = round(plain[name])
        figures[f"{name}_streamed_per_s"] = round(streamed[name])
        figures[f"{name}_plain_vs_bare"] = round(plain[name] / plain["bare"], 2)
        figures[f"{name}_streamed_vs_bare"] = round(streamed[name] / streamed["bare"], 2)
        if name != "worker":
            figures[f"{name}_plain_vs_worker"] = round(plain[name] / plain["worker"], 2)
            figures[f"{name}_streamed_vs_worker"] = round(streamed[name] / streamed["worker"], 2)
    return figures


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--also", action="append", default=[], type=Path, metavar="CHECKOUT",
                        help="also measure the worker of another checkout, in the same rounds (repeatable)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    checkouts = {"worker": None} | {f"worker@{c.resolve().name}": c.resolve() for c in args.also}

    ports = {name: free_port() for name in ("bare", *checkouts)}
    with tempfile.TemporaryDirectory() as scratch, contextlib.ExitStack() as stack:
        homes = {name: Path(scratch) / name for name in checkouts}
        processes: list[subprocess.Popen[bytes]] = []
        stack.callback(_stop, processes)
        processes.append(start([sys.executable, "-c", BARE_SERVER, str(ports["bare"])], ports["bare"], dict(os.environ)))
        for name, checkout in checkouts.items():
            seed_credit(homes[name], REQUESTER)
            processes.append(start(
                [sys.executable, "-m", "lobstah_core", "worker", "start", "--engine", "demo",
                 "--port", str(ports[name]), "--demo-delay", "0", "--demo-tps", "0", "--demo-reply-tokens", "1024",
                 "--concurrency", "64", "--max-queue", "256"],
                ports[name], {**os.environ, "LOBSTAH_HOME": str(homes[name])}, cwd=checkout))
        targets = {name: f"http://127.0.0.1:{port}/v1/chat/completions" for name, port in ports.items()}
        figures = asyncio.run(measure(args, targets))
        _stop(processes)
        for name, home in homes.items():
            figures[f"{name}_receipts_in_ledger"] = _receipts(home)
    if args.json:
        print(json.dumps(figures))
    else:
        print(f"{'bare aiohttp:':<20} {figures['bare_per_s']:>6} req/s (the floor of this stack)")
        for name in checkouts:
            for mode in ("plain", "streamed"):
                print(f"{name + ', ' + mode + ':':<20} {figures[f'{name}_{mode}_per_s']:>6} completions/s "
                      f"({figures[f'{name}_{mode}_vs_bare']}x bare)")
            if name != "worker":
                print(f"  {name} / this worker: plain {figures[f'{name}_plain_vs_worker']}x, "
                      f"streamed {figures[f'{name}_streamed_vs_worker']}x")
            print(f"  receipts recorded: {figures[f'{name}_receipts_in_ledger']}")
        print(f"{'per streamed chunk:':<20} {figures['us_per_chunk']} µs")
    return 0


def _stop(processes: list[subprocess.Popen[bytes]]) -> None:
    for process in processes:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            process.wait(timeout=15)


def _receipts(home: Path) -> int:
    with Ledger(home / "ledger.sqlite3") as ledger:
        return ledger.totals().receipts


if __name__ == "__main__":
    sys.exit(main())
