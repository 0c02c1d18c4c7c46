"""Tracker benchmark: announcements ingested per second, and GET /peers at 10,000 live peers.

    python bench/tracker.py [--peers 10000] [--json]

The tracker runs in its own process. Announcements are signed up front (not timed) and posted
over 16 keep-alive connections; each one is verified (Ed25519) by the tracker. The baseline
is the same number of POSTs of the same bodies to a bare aiohttp server that parses the JSON
and answers ``{"ok": true}``, so the ratio is what verification and the registry cost.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import statistics
import sys
import time

import aiohttp
from _harness import free_port, start

from lobstah_core.protocol import Identity, sign_announcement

BARE_SERVER = """
import sys
from aiohttp import web
async def announce(request):
    await request.json()
    return web.json_response({"ok": True})
app = web.Application()
app.router.add_post("/announce", announce)
web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), print=None)
"""


def announcements(count: int) -> list[bytes]:
    now = time.time_ns() // 1_000_000
    bodies = []
    for n in range(count):
        identity = Identity.generate()
        body = {"version": 1, "pubkey": identity.pubkey, "url": f"http://198.51.100.{n % 250}:{17000 + n % 1000}",
                "label": f"peer-{n}", "models": ["llama3.2:3b", "qwen2.5:7b"], "tier": "batch",
                "ttlSeconds": 3600, "announcedAt": now}
        bodies.append(json.dumps(sign_announcement(body, identity).to_wire()).encode())
    return bodies


async def post_all(url: str, bodies: list[bytes], concurrency: int = 16) -> float:
    """Seconds to POST every body (status 200 required)."""
    queue = list(reversed(bodies))
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=concurrency)) as session:

        async def client() -> None:
            while queue:
                body = queue.pop()
                async with session.post(url, data=body, headers={"Content-Type": "application/json"}) as response:
                    await response.read()
                    if response.status != 200:
                        raise SystemExit(f"{url} answered {response.status}")

        started = time.perf_counter()
        await asyncio.gather(*(client() for _ in range(concurrency)))
        return time.perf_counter() - started


async def get_peers(url: str, repeats: int = 20) -> tuple[float, int, int]:
    """Median seconds of GET /peers, the count it reports, and the body size."""
    timings = []
    async with aiohttp.ClientSession() as session:
        for _ in range(repeats):
            started = time.perf_counter()
            async with session.get(url) as response:
                body = await response.read()
            timings.append(time.perf_counter() - started)
    return statistics.median(timings), json.loads(body)["count"], len(body)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--peers", type=int, default=10_000)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    bodies = announcements(args.peers)
    tracker_port, bare_port = free_port(), free_port()
    processes = [
        start([sys.executable, "-m", "lobstah_core", "tracker", "start", "--port", str(tracker_port), "--no-reachability-check"], tracker_port, dict(os.environ)),
        start([sys.executable, "-c", BARE_SERVER, str(bare_port)], bare_port, dict(os.environ)),
    ]
    try:
        bare_s = asyncio.run(post_all(f"http://127.0.0.1:{bare_port}/announce", bodies))
        tracker_s = asyncio.run(post_all(f"http://127.0.0.1:{tracker_port}/announce", bodies))
        peers_s, count, size = asyncio.run(get_peers(f"http://127.0.0.1:{tracker_port}/peers"))
    finally:
        for process in processes:
            process.send_signal(signal.SIGTERM)
            process.wait(timeout=20)
    assert count == args.peers, count
    figures = {
        "announcements": args.peers,
        "tracker_per_s": round(args.peers / tracker_s),
        "bare_per_s": round(args.peers / bare_s),
        "tracker_vs_bare": round(bare_s / tracker_s, 2),
        "get_peers_ms": round(peers_s * 1000, 1),
        "get_peers_bytes": size,
    }
    if args.json:
        print(json.dumps(figures))
    else:
        print(f"announce: {figures['tracker_per_s']:,}/s verified ({figures['tracker_vs_bare']}x a bare aiohttp "
              f"JSON POST at {figures['bare_per_s']:,}/s)")
        print(f"GET /peers at {count:,} live peers: {figures['get_peers_ms']} ms median ({size / 1e6:.1f} MB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
