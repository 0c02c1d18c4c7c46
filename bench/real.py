"""Real-model benchmark: the same prompts straight to the llamacpp engine and through
router + worker, plain and streamed, at concurrency 1 and 2.

    python bench/real.py [--rounds 3] [--max-tokens 32] [--json]

Needs the llamacpp extra. "direct" is a LlamaCppEngine in this process, called as the worker
calls it; "grid" is ``lobstah-core worker start --engine llamacpp`` and ``lobstah-core router
start`` in their own processes, reached over HTTP by an aiohttp client in this process. Both load
the packaged SmolLM2-135M with the same settings, answer at temperature 0 with a fixed seed
(so the same prompt gets the same tokens both ways, which the report checks) and never run at
the same time: the two paths take turns, batch by batch, so a busy machine slows both alike.

Figures, each a ratio or a difference between the two paths in the same run:
- tokens/s through the grid ÷ tokens/s direct (completion tokens over wall time; target ≥ 0.97);
- time to first token through the grid − direct, in ms (streams; target ≤ 5 ms), medians;
- tokens per CPU second through the grid (worker + router processes) ÷ direct: the same ratio
  for a machine that is the bottleneck, and far steadier than wall time on a shared machine;
- whether both paths gave the same answers (one request at a time).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
from _harness import free_port, seed_credit, start

from lobstah_core.engines.llamacpp import DEFAULT_MODEL_NAME, LlamaCppEngine
from lobstah_core.identity_file import load_or_create_identity
from lobstah_core.router.peers import Peer, PeerStore

PROMPTS = [
    "What do lobsters eat?",
    "Explain a signed receipt in one sentence.",
    "List three uses for an idle computer at night.",
    "Why is the sea salty?",
]


@dataclass(frozen=True)
class Answer:
    """One completion as its client saw it."""

    completion_tokens: int
    #: Seconds from sending to the first content token (streams) or to the whole answer (plain).
    first_s: float
    text: str


def request(prompt: str, max_tokens: int, stream: bool) -> dict[str, Any]:
    body: dict[str, Any] = {"model": DEFAULT_MODEL_NAME, "messages": [{"role": "user", "content": prompt}],
                            "max_tokens": max_tokens, "temperature": 0, "seed": 7, "stream": stream}
    if stream:
        body["stream_options"] = {"include_usage": True}
    return body


async def direct(engine: LlamaCppEngine, body: dict[str, Any]) -> Answer:
    started = time.perf_counter()
    if not body["stream"]:
        completion = await engine.chat(body)
        return Answer(completion["usage"]["completion_tokens"], time.perf_counter() - started,
                      completion["choices"][0]["message"]["content"])
    first, pieces, tokens = 0.0, [], 0
    async for chunk in engine.stream(body):
        first, tokens = _take(chunk, pieces, first, started, tokens)
    return Answer(tokens, first, "".join(pieces))


async def through_grid(session: aiohttp.ClientSession, url: str, body: dict[str, Any]) -> Answer:
    started = time.perf_counter()
    async with session.post(url, json=body) as response:
        if response.status != 200:
            raise SystemExit(f"the grid answered {response.status}: {await response.text()}")
        if not body["stream"]:
            completion = await response.json()
            return Answer(completion["usage"]["completion_tokens"], time.perf_counter() - started,
                          completion["choices"][0]["message"]["content"])
        first, pieces, tokens = 0.0, [], 0
        async for line in response.content:
            if line.startswith(b"data: {"):
                chunk = json.loads(line[6:])
                if "error" in chunk:
                    raise SystemExit(f"the stream failed: {chunk['error']}")
                first, tokens = _take(chunk, pieces, first, started, tokens)
    return Answer(tokens, first, "".join(pieces))


def _take(chunk: dict[str, Any], pieces: list[str], first: float, started: float, tokens: int) -> tuple[float, int]:
    """Note a chunk's text (and when the first arrived) and its usage; returns (first, tokens)."""
    for choice in chunk.get("choices", []):
        text = choice.get("delta", {}).get("content")
        if text:
            pieces.append(text)
            first = first or time.perf_counter() - started
    usage = chunk.get("usage")
    return first, usage["completion_tokens"] if usage else tokens


async def batch(call: Any, bodies: list[dict[str, Any]], concurrency: int) -> tuple[list[Answer], float]:
    """Every body through ``call``, ``concurrency`` clients at once; returns answers and wall seconds."""
    waiting = list(enumerate(bodies))
    answers: list[Answer | None] = [None] * len(bodies)

    async def client() -> None:
        while waiting:
            index, body = waiting.pop(0)
            answers[index] = await call(body)

    started = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(concurrency)))
    return [a for a in answers if a is not None], time.perf_counter() - started


def process_cpu_s(pids: list[int]) -> float:
    """CPU seconds (user + system) the processes ``pids`` have used so far (Linux /proc)."""
    ticks = 0
    for pid in pids:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        ticks += int(fields[11]) + int(fields[12])  # utime, stime: fields 14 and 15 of proc(5)
    return ticks / os.sysconf("SC_CLK_TCK")


async def measure(router_url: str, grid_pids: list[int], args: argparse.Namespace) -> dict[str, Any]:
    engine = LlamaCppEngine()
    url = f"{router_url}/v1/chat/completions"
    runs: dict[str, list[tuple[list[Answer], float]]] = defaultdict(list)
    # CPU seconds each path used: this process for the engine in it (nothing else runs here
    # meanwhile), the worker's and router's processes for the grid (its client left out).
    cpu_clocks = {"direct": time.process_time, "grid": lambda: process_cpu_s(grid_pids)}
    cpu: dict[str, float] = defaultdict(float)
    timeout = aiohttp.ClientTimeout(total=600)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        paths = {"direct": lambda body: direct(engine, body), "grid": lambda body: through_grid(session, url, body)}
        for stream in (False, True):  # warm-up: model pages, both processes' first allocations
            for call in paths.values():
                await batch(call, [request(PROMPTS[0], 4, stream)], 1)
        # Small batches (one prompt at c=1, two at c=2), the paths taking turns to go first: on a
        # shared machine the load changes by the second, and each pair of batches sees about the same.
        turn = 0
        for _ in range(args.rounds):
            for stream in (False, True):
                for concurrency in (1, 2):
                    for group in (PROMPTS[i:i + concurrency] for i in range(0, len(PROMPTS), concurrency)):
                        bodies = [request(prompt, args.max_tokens, stream) for prompt in group]
                        turn += 1
                        for name in list(paths)[:: 1 if turn % 2 else -1]:
                            key = f"{name}/{'stream' if stream else 'plain'}/c{concurrency}"
                            before = cpu_clocks[name]()
                            runs[key].append(await batch(paths[name], bodies, concurrency))
                            cpu[key] += cpu_clocks[name]() - before
    await engine.aclose()
    return summarise(runs, cpu)


def summarise(runs: dict[str, list[tuple[list[Answer], float]]], cpu: dict[str, float]) -> dict[str, Any]:
    figures: dict[str, Any] = {}
    for key in sorted({k.split("/", 1)[1] for k in runs}):
        direct_runs, grid_runs = runs[f"direct/{key}"], runs[f"grid/{key}"]
        # Per pair of batches: tokens/s of each path and their ratio; the median is reported.
        ratios = [_tps(g) / _tps(d) for d, g in zip(direct_runs, grid_runs, strict=True)]
        firsts = {name: statistics.median(a.first_s for answers, _ in path for a in answers)
                  for name, path in (("direct", direct_runs), ("grid", grid_runs))}
        # At c=2 the two requests may reach the model in either order, and llama.cpp reuses the
        # previous request's cache for a shared prefix: at temperature 0 a near tie can then tip
        # either way. One at a time, both paths must give the same tokens.
        same = all(a.text == b.text for (da, _), (ga, _) in zip(direct_runs, grid_runs, strict=True) for a, b in zip(da, ga))
        figures[key] = {
            "direct_tokens_per_s": round(statistics.median(_tps(r) for r in direct_runs), 1),
            "grid_tokens_per_s": round(statistics.median(_tps(r) for r in grid_runs), 1),
            "grid_vs_direct": round(statistics.median(ratios), 3),
            "grid_vs_direct_range": [round(min(ratios), 3), round(max(ratios), 3)],
            "direct_first_ms": round(firsts["direct"] * 1000, 1),
            "added_first_ms": round((firsts["grid"] - firsts["direct"]) * 1000, 1),
            "same_answers": same if key.endswith("c1") else None,
            # Tokens per CPU second, grid ÷ direct: what the grid costs when the machine, not
            # the wall clock, is the limit; a busy machine disturbs it far less than wall time.
            "grid_vs_direct_per_cpu_s": round(
                (_tokens(grid_runs) / cpu[f"grid/{key}"]) / (_tokens(direct_runs) / cpu[f"direct/{key}"]), 3),
        }
    return figures


def _tokens(runs: list[tuple[list[Answer], float]]) -> int:
    return sum(a.completion_tokens for answers, _ in runs for a in answers)


def _tps(run: tuple[list[Answer], float]) -> float:
    answers, seconds = run
    return sum(a.completion_tokens for a in answers) / seconds


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--max-tokens", type=int, default=32)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    worker_port, router_port = free_port(), free_port()
    with tempfile.TemporaryDirectory() as scratch:
        worker_home, router_home = Path(scratch) / "worker", Path(scratch) / "router"
        router_id = load_or_create_identity(router_home / "identity.json")
        worker_id = load_or_create_identity(worker_home / "identity.json")
        seed_credit(worker_home, router_id)
        PeerStore(router_home / "peers.json").add(Peer(pubkey=worker_id.pubkey, url=f"http://127.0.0.1:{worker_port}"))
        python = sys.executable
        processes = [
            start([python, "-m", "lobstah_core", "worker", "start", "--engine", "llamacpp", "--port", str(worker_port)],
                  worker_port, {**os.environ, "LOBSTAH_HOME": str(worker_home)}),
            start([python, "-m", "lobstah_core", "router", "start", "--port", str(router_port)],
                  router_port, {**os.environ, "LOBSTAH_HOME": str(router_home)}),
        ]
        load_before = os.getloadavg()[0]
        try:
            figures = asyncio.run(measure(f"http://127.0.0.1:{router_port}", [p.pid for p in processes], args))
        finally:
            for process in processes:
                process.send_signal(signal.SIGTERM)
                process.wait(timeout=30)
    # How busy the machine was (1-minute load average, this run included): wall-clock figures
    # from a machine busier than its cores are mostly noise; the per-CPU-second ratio is steadier.
    figures["load_average"] = [round(load_before, 1), round(os.getloadavg()[0], 1), os.cpu_count()]
    if args.json:
        print(json.dumps(figures))
        return 0
    print(f"SmolLM2-135M, {args.rounds} rounds of {len(PROMPTS)} prompts per row and path, up to {args.max_tokens} tokens each")
    print(f"{'':14} {'direct tok/s':>12} {'grid tok/s':>10} {'grid/direct':>11} {'(range)':>13} "
          f"{'direct TTFT':>11} {'added':>8}  {'per CPU s':>9}  same answers")
    for key, f in figures.items():
        if key == "load_average":
            continue
        low, high = f["grid_vs_direct_range"]
        print(f"{key:14} {f['direct_tokens_per_s']:>12} {f['grid_tokens_per_s']:>10} {f['grid_vs_direct']:>10}x "
              f"{f'({low}-{high})':>13} {f['direct_first_ms']:>8} ms {f['added_first_ms']:>5} ms  {f['grid_vs_direct_per_cpu_s']:>8}x  "
              f"{ {True: 'yes', False: 'NO', None: '-'}[f['same_answers']] }")
    print("TTFT: time to the first token (streams) or to the whole answer (plain), median of every request")
    print("per CPU s: tokens per CPU second through the grid (worker + router) / direct")
    before, after, cores = figures["load_average"]
    print(f"load average {before} at the start, {after} at the end, on {cores} cores")
    return 0


if __name__ == "__main__":
    sys.exit(main())
