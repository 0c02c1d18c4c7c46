"""Ledger benchmark: verified ingest of N receipts, then the cost of one balance query.

    python bench/ledger.py [--count 1000000] [--json]

Receipts are signed up front (not timed) by a few workers for one requester, written as a JS
``ledger.jsonl``, then imported through ``Ledger.import_jsonl`` exactly as ``lobstah-core ledger
import`` does: JSON parse, schema check, Ed25519 verification and batched SQLite inserts. The
balance query is timed for the requester party to every receipt (the worst case: the router's
own key in a router's ledger). Targets (issue 2): ingest >= 10,000/s, balance <= 5 ms at 1M.
"""

from __future__ import annotations

import argparse
import json
import statistics
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


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=1_000_000)
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

    figures = {
        "receipts": args.count,
        "ingest_per_s": round(args.count / ingest_s),
        "ingest_target_ratio": round(args.count / ingest_s / 10_000, 2),
        "balance_ms_median": round(statistics.median(timings) * 1000, 3),
        "balance_ms_p99": round(sorted(timings)[int(len(timings) * 0.99) - 1] * 1000, 3),
    }
    if args.json:
        print(json.dumps(figures))
    else:
        print(f"verified ingest: {figures['ingest_per_s']:,} receipts/s "
              f"({figures['ingest_target_ratio']}x the 10,000/s target)")
        print(f"balance query at {args.count:,} receipts: median {figures['balance_ms_median']} ms, "
              f"p99 {figures['balance_ms_p99']} ms (target <= 5 ms)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
