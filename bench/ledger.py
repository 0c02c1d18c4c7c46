"""Ledger benchmark: verified ingest of N receipts, then the cost of one balance query.

    python bench/ledger.py [--count 1000000] [--also CHECKOUT ...] [--json]

Receipts are signed up front (not timed) by a few workers for one requester, written as a JS
``ledger.jsonl``, then imported through ``Ledger.import_jsonl`` exactly as ``lobstah-core ledger
import`` does: JSON parse, schema check, Ed25519 verification and batched SQLite inserts. The
balance query is timed for the requester party to every receipt (the worst case: the router's
own key in a router's ledger). Targets (issue 2): ingest >= 10,000/s, balance <= 5 ms at 1M.

``--also CHECKOUT`` imports the same file with another checkout of this repository too (a git
worktree, say), each import in a fresh process, this checkout's and the others' in turns
(``--rounds``): an A/B in one run, reported with the CPU a receipt took in the inserting process
and in the verifiers.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from lobstah_core.ledger import Ledger
from lobstah_core.protocol import Identity, new_nonce, sign_receipt

WORKERS = [Identity.from_seed(bytes([n]) * 32) for n in range(1, 9)]
REQUESTER = Identity.from_seed(b"R" * 32)


def _sign_chunk(args: tuple[int, int]) -> list[str]:
    start, count = args
    lines = []
    for n in range(start, start + count):
        worker = WORKERS[n % len(WORKERS)]
        body = {
            "version": 1,
            "jobId": f"bench-{n}",
            "nonce": new_nonce(),
            "requesterPubkey": REQUESTER.pubkey,
            "workerPubkey": worker.pubkey,
            "model": "demo-fast",
            "inputTokens": 100 + n % 50,
            "outputTokens": 200 + n % 70,
            "startedAt": 1_767_225_600_000 + n * 10,
            "completedAt": 1_767_225_600_500 + n * 10,
        }
        lines.append(json.dumps(sign_receipt(body, worker).to_wire(), separators=(",", ":")))
    return lines


def write_jsonl(path: Path, count: int) -> None:
    chunk = 20_000
    jobs = [(start, min(chunk, count - start)) for start in range(0, count, chunk)]
    with ProcessPoolExecutor() as pool, path.open("w", encoding="utf-8") as out:
        for lines in pool.map(_sign_chunk, jobs):
            out.write("\n".join(lines) + "\n")


#: One import in a fresh process: the rate and the CPU a receipt took (``getrusage``).
_IMPORT = """
import json, resource, sys, tempfile, time
from pathlib import Path
from lobstah_core.ledger import Ledger
def main():
    with tempfile.TemporaryDirectory() as scratch, Ledger(Path(scratch) / "ledger.sqlite3") as ledger:
        own = resource.getrusage(resource.RUSAGE_SELF)
        started = time.perf_counter()
        with open(sys.argv[1], encoding="utf-8") as lines:
            added = ledger.import_jsonl(lines).added
        ingest_s = time.perf_counter() - started
        after, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
        inserting = after.ru_utime + after.ru_stime - own.ru_utime - own.ru_stime
        print(json.dumps({"added": added, "per_s": added / ingest_s, "inserting_us": inserting / added * 1e6,
                          "verifiers_us": (children.ru_utime + children.ru_stime) / added * 1e6}))
if __name__ == "__main__":
    main()
"""


def compare(jsonl: Path, checkouts: dict[str, Path], rounds: int) -> dict[str, list[dict[str, float]]]:
    """Import ``jsonl`` with each checkout's code, each in a fresh process, in turns."""
    runs: dict[str, list[dict[str, float]]] = {name: [] for name in checkouts}
    for _ in range(rounds):
        for name, checkout in checkouts.items():
            env = {**os.environ, "PYTHONPATH": str(checkout)}
            out = subprocess.run([sys.executable, "-c", _IMPORT, str(jsonl)], env=env, cwd=checkout,
                                 capture_output=True, text=True, check=True).stdout
            runs[name].append(json.loads(out))
            print(f"  {name}: {runs[name][-1]['per_s']:,.0f}/s", file=sys.stderr)
    return runs


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=1_000_000)
    parser.add_argument("--also", action="append", default=[], type=Path, metavar="CHECKOUT",
                        help="import the same file with another checkout's code too, in turns")
    parser.add_argument("--rounds", type=int, default=2, help="turns of the --also comparison")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as scratch:
        jsonl = Path(scratch) / "ledger.jsonl"
        started = time.perf_counter()
        write_jsonl(jsonl, args.count)
        print(f"signed {args.count:,} receipts in {time.perf_counter() - started:.1f} s (not timed)", file=sys.stderr)

        with Ledger(Path(scratch) / "ledger.sqlite3") as ledger:
            started = time.perf_counter()
            with jsonl.open(encoding="utf-8") as lines:
                report = ledger.import_jsonl(lines)
            ingest_s = time.perf_counter() - started
            assert report.added == args.count, report

            timings = []
            for _ in range(200):
                started = time.perf_counter()
                summary = ledger.summary(REQUESTER.pubkey)
                timings.append(time.perf_counter() - started)
            assert summary.totals.receipts == args.count

        checkouts = {"this": Path(__file__).resolve().parent.parent} | {f"@{c.name}": c.resolve() for c in args.also}
        runs = compare(jsonl, checkouts, args.rounds) if args.also else {}

    figures = {
        "receipts": args.count,
        "ingest_per_s": round(args.count / ingest_s),
        "ingest_target_ratio": round(args.count / ingest_s / 10_000, 2),
        "balance_ms_median": round(statistics.median(timings) * 1000, 3),
        "balance_ms_p99": round(sorted(timings)[int(len(timings) * 0.99) - 1] * 1000, 3),
    }
    if runs:
        figures["comparison"] = runs
    if args.json:
        print(json.dumps(figures))
    else:
        print(f"verified ingest: {figures['ingest_per_s']:,} receipts/s "
              f"({figures['ingest_target_ratio']}x the 10,000/s target)")
        print(f"balance query at {args.count:,} receipts: median {figures['balance_ms_median']} ms, "
              f"p99 {figures['balance_ms_p99']} ms (target <= 5 ms)")
        for name, results in runs.items():
            rates = ", ".join(f"{r['per_s']:,.0f}/s" for r in results)
            cpu = ", ".join(f"{r['inserting_us']:.0f} + {r['verifiers_us']:.0f}" for r in results)
            line = f"  {name}: {rates}; CPU a receipt, inserting + verifiers: {cpu} us"
            if name != "this":
                ratios = ", ".join(f"{a['per_s'] / b['per_s']:.3f}x" for a, b in zip(runs["this"], results, strict=True))
                line += f"; this over it, turn by turn: {ratios}"
            print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
