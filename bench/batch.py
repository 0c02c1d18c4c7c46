"""Cargo benchmark: a batch of 1,000 requests over three demo workers of different speeds.

    python bench/batch.py [--items 1000] [--tps 20 40 80] [--concurrency 4] [--reply-tokens 16] [--json]

Three demo workers (``--demo-tps`` 20, 40 and 80, no first-token delay, every reply
``--reply-tokens`` long, ``--concurrency`` engine calls each) and a router, each in its own
process. First each worker's capacity is measured alone, in tokens per second: ``concurrency``
clients, each sending ``--rounds`` signed requests straight to it one after the other. Then two batches
go through the router's Batch API:

1. all three workers up: efficiency = ideal / makespan, where the ideal is the batch's tokens
   over the sum of the measured capacities (target ≥ 0.9);
2. the 40 tokens/s worker killed (SIGKILL) once 30% of the requests are done: the ideal is the
   time of the kill plus the tokens left then over the survivors' capacities (target ≥ 0.8).

Both batches must end ``completed`` with every custom_id once in the output file, and the
router's ledger must gain exactly one receipt per request (no duplicates). Makespan is from
``POST /v1/batches`` to the first poll (every 0.1 s) that sees the batch completed.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp
from _harness import free_port, seed_credit, start

from lobstah_core.identity_file import load_or_create_identity
from lobstah_core.ledger import Ledger
from lobstah_core.protocol import Identity
from lobstah_core.protocol.request_signing import sign_request
from lobstah_core.router.batch_store import BatchStore
from lobstah_core.router.peers import Peer, PeerStore

PATH = "/v1/chat/completions"


def chat(n: int, reply_tokens: int) -> dict[str, Any]:
    return {"model": "demo-fast", "messages": [{"role": "user", "content": f"cargo item {n}"}], "max_tokens": reply_tokens}


async def capacity(session: aiohttp.ClientSession, url: str, router: Identity, concurrency: int, rounds: int, reply_tokens: int) -> float:
    """Tokens per second of one worker alone, ``concurrency`` requests at a time."""

    async def one(n: int) -> int:
        body = json.dumps(chat(n, reply_tokens)).encode()
        headers = {"Content-Type": "application/json", **sign_request(router, "POST", PATH, body, int(time.time() * 1000))}
        async with session.post(url + PATH, data=body, headers=headers) as response:
            response.raise_for_status()
            return (await response.json())["usage"]["completion_tokens"]

    async def client(index: int) -> int:
        return sum([await one(index * rounds + n) for n in range(rounds)])

    await one(-1)  # warm the connection
    started = time.perf_counter()
    tokens = sum(await asyncio.gather(*(client(i) for i in range(concurrency))))
    return tokens / (time.perf_counter() - started)


async def run_batch(
    session: aiohttp.ClientSession, router_url: str, items: int, reply_tokens: int, kill: Any = None
) -> dict[str, Any]:
    """Submit a batch and wait for it; ``kill(counts)`` is called on every poll until it
    returns a kill time (perf_counter seconds)."""
    lines = [json.dumps({"custom_id": f"c{n}", "method": "POST", "url": PATH, "body": chat(n, reply_tokens)}) for n in range(items)]
    form = aiohttp.FormData()
    form.add_field("purpose", "batch")
    form.add_field("file", ("\n".join(lines) + "\n").encode(), filename="cargo.jsonl")
    async with session.post(f"{router_url}/v1/files", data=form) as response:
        upload = await response.json()
    started = time.perf_counter()
    async with session.post(f"{router_url}/v1/batches", json={"input_file_id": upload["id"], "endpoint": PATH, "completion_window": "24h"}) as response:
        batch = await response.json()
    killed: tuple[float, int] | None = None
    while batch["status"] not in ("completed", "failed", "expired", "cancelled"):
        await asyncio.sleep(0.1)
        async with session.get(f"{router_url}/v1/batches/{batch['id']}") as response:
            batch = await response.json()
        if kill is not None and killed is None and batch["request_counts"]["completed"] >= 0.3 * items:
            kill()
            killed = (time.perf_counter() - started, batch["request_counts"]["completed"])
    makespan = time.perf_counter() - started
    async with session.get(f"{router_url}/v1/files/{batch['output_file_id']}/content") as response:
        output = [json.loads(line) for line in (await response.text()).splitlines()]
    ids = [line["custom_id"] for line in output]
    return {"batch": batch, "makespan_s": makespan, "killed": killed,
            "every_id_once": sorted(ids) == sorted(f"c{n}" for n in range(items)) and len(ids) == items}


def receipts(home: Path) -> int:
    with Ledger(home / "ledger.sqlite3") as ledger:
        return ledger.totals().receipts


async def wait_receipts(home: Path, expected: int) -> int:
    for _ in range(100):
        if receipts(home) >= expected:
            break
        await asyncio.sleep(0.05)
    await asyncio.sleep(0.5)  # anything beyond would be a duplicate: give it time to show
    return receipts(home)


async def measure(args: argparse.Namespace, scratch: Path) -> dict[str, Any]:
    python, env = sys.executable, dict(os.environ)
    router_home = scratch / "router"
    router_id = load_or_create_identity(router_home / "identity.json")
    workers, processes = [], []
    for tps in args.tps:
        home, port = scratch / f"worker-{tps:g}", free_port()
        pubkey = load_or_create_identity(home / "identity.json").pubkey
        seed_credit(home, router_id)
        processes.append(start(
            [python, "-m", "lobstah_core", "worker", "start", "--engine", "demo", "--port", str(port), "--demo-delay", "0",
             "--demo-tps", str(tps), "--demo-reply-tokens", str(args.reply_tokens), "--concurrency", str(args.concurrency),
             "--label", f"tps{tps:g}"],
            port, {**env, "LOBSTAH_HOME": str(home)},
        ))
        workers.append((tps, pubkey, f"http://127.0.0.1:{port}"))
        PeerStore(router_home / "peers.json").add(Peer(pubkey=pubkey, url=f"http://127.0.0.1:{port}", label=f"tps{tps:g}"))
    router_port = free_port()
    processes.append(start([python, "-m", "lobstah_core", "router", "start", "--port", str(router_port)], router_port,
                           {**env, "LOBSTAH_HOME": str(router_home)}))
    router_url = f"http://127.0.0.1:{router_port}"
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=600)) as session:
            capacities = {tps: await capacity(session, url, router_id, args.concurrency, args.rounds, args.reply_tokens)
                          for tps, _, url in workers}
            total_tokens = args.items * args.reply_tokens
            before = receipts(router_home)
            full = await run_batch(session, router_url, args.items, args.reply_tokens)
            full["ideal_s"] = total_tokens / sum(capacities.values())
            full["receipts"] = await wait_receipts(router_home, before + args.items) - before

            victim = args.tps[len(args.tps) // 2]
            victim_process = processes[args.tps.index(victim)]
            before = receipts(router_home)
            cut = await run_batch(session, router_url, args.items, args.reply_tokens,
                                  kill=lambda: victim_process.send_signal(signal.SIGKILL))
            at, done = cut["killed"]
            survivors = sum(c for tps, c in capacities.items() if tps != victim)
            cut["ideal_s"] = at + (args.items - done) * args.reply_tokens / survivors
            cut["receipts"] = await wait_receipts(router_home, before + args.items) - before
    finally:
        for process in processes:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in processes:
            process.wait(timeout=30)
    store = BatchStore(router_home / "batches.sqlite3")
    label = {pubkey: f"tps{tps:g}" for tps, pubkey, _ in workers}
    for run in (full, cut):
        run["items_per_peer"] = {label.get(k, k): v for k, v in store.items_per_peer(run["batch"]["id"]).items()}
        run["efficiency"] = run["ideal_s"] / run["makespan_s"]
        del run["batch"]
    store.close()
    return {"capacities_tps": capacities, "victim_tps": victim, "all_up": full, "one_killed": cut}


def report(figures: dict[str, Any], args: argparse.Namespace) -> bool:
    print(f"{args.items} requests of {args.reply_tokens} tokens; workers at {', '.join(f'{t:g}' for t in args.tps)} tokens/s, "
          f"{args.concurrency} at a time")
    print("measured capacity (tokens/s): " + ", ".join(f"tps{t:g} {c:.1f}" for t, c in figures["capacities_tps"].items()))
    ok = True
    for name, target in (("all_up", 0.9), ("one_killed", 0.8)):
        run = figures[name]
        good = run["efficiency"] >= target and run["every_id_once"] and run["receipts"] == args.items
        ok &= good
        extra = f", tps{figures['victim_tps']:g} killed at {run['killed'][0]:.1f} s" if run["killed"] else ""
        print(f"{name:<11} makespan {run['makespan_s']:.1f} s, ideal {run['ideal_s']:.1f} s, efficiency {run['efficiency']:.3f} "
              f"(target >= {target}){extra}; every custom_id once: {run['every_id_once']}; receipts {run['receipts']}/{args.items}; "
              f"per peer {run['items_per_peer']}  {'PASS' if good else 'FAIL'}")
    return ok


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=1000)
    parser.add_argument("--tps", type=float, nargs="+", default=[20.0, 40.0, 80.0])
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--reply-tokens", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=10, help="requests per client in the capacity measurement (default %(default)s)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="lobstah-bench-batch-") as scratch:
        figures = asyncio.run(measure(args, Path(scratch)))
    if args.json:
        print(json.dumps(figures, indent=2))
        return 0
    return 0 if report(figures, args) else 1


if __name__ == "__main__":
    sys.exit(main())
