"""Worker benchmark: completions/s with the demo engine at zero delay, plain and streamed,
and the cost of one streamed chunk, beside a bare aiohttp server (the floor of this stack).

    python bench/worker.py [--seconds 5] [--concurrency 16] [--json]

Both servers run in their own process; this process is the load generator (aiohttp client).
The bare server answers each POST with a fixed chat.completion and signs nothing, so the
ratio "worker / bare" is what the worker's work costs: validation, admission, the demo engine,
the Ed25519 receipt and its ledger write.
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


async def measure(args: argparse.Namespace, worker_url: str, bare_url: str) -> dict[str, float]:
    await load(worker_url, CHAT, 1, args.concurrency)  # warm up both
    await load(bare_url, CHAT, 1, args.concurrency)
    bare = await load(bare_url, CHAT, args.seconds, args.concurrency)
    plain = await load(worker_url, CHAT, args.seconds, args.concurrency)
    streamed = await load(worker_url, {**CHAT, "stream": True}, args.seconds, args.concurrency)
    short = await stream_seconds(worker_url, 1, 40)
    long = await stream_seconds(worker_url, 513, 40)
    return {
        "bare_per_s": round(bare),
        "plain_per_s": round(plain),
        "streamed_per_s": round(streamed),
        "plain_vs_bare": round(plain / bare, 2),
        "streamed_vs_bare": round(streamed / bare, 2),
        "us_per_chunk": round((long - short) / 512 * 1e6, 1),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    worker_port, bare_port = free_port(), free_port()
    with tempfile.TemporaryDirectory() as home:
        env = {**os.environ, "LOBSTAH_HOME": home}
        seed_credit(Path(home), REQUESTER)
        worker = start([sys.executable, "-m", "lobstah_core", "worker", "start", "--engine", "demo",
                        "--port", str(worker_port), "--demo-delay", "0", "--demo-tps", "0", "--demo-reply-tokens", "1024",
                        "--concurrency", "64", "--max-queue", "256"], worker_port, env)
        bare = start([sys.executable, "-c", BARE_SERVER, str(bare_port)], bare_port, env)
        try:
            figures = asyncio.run(measure(args, f"http://127.0.0.1:{worker_port}/v1/chat/completions",
                                          f"http://127.0.0.1:{bare_port}/v1/chat/completions"))
        finally:
            for process in (worker, bare):
                process.send_signal(signal.SIGTERM)
                process.wait(timeout=15)
        figures["receipts_in_ledger"] = _receipts(Path(home))
    if args.json:
        print(json.dumps(figures))
    else:
        print(f"bare aiohttp:        {figures['bare_per_s']:>6} req/s (the floor of this stack)")
        print(f"worker, plain:       {figures['plain_per_s']:>6} completions/s ({figures['plain_vs_bare']}x bare)")
        print(f"worker, streamed:    {figures['streamed_per_s']:>6} completions/s ({figures['streamed_vs_bare']}x bare)")
        print(f"per streamed chunk:  {figures['us_per_chunk']} µs")
        print(f"receipts recorded:   {figures['receipts_in_ledger']}")
    return 0




def _receipts(home: Path) -> int:
    with Ledger(home / "ledger.sqlite3") as ledger:
        return ledger.totals().receipts


if __name__ == "__main__":
    sys.exit(main())
