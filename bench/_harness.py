"""What the benchmarks share: free ports, starting servers in their own processes, and
giving a requester credit with a worker (so the worker's credit check passes and stays on)."""

from __future__ import annotations

import math
import socket
import subprocess
import time
from pathlib import Path

from lobstah_core.ledger import Ledger
from lobstah_core.protocol import Identity, new_nonce, sign_receipt


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def start(command: list[str], port: int, env: dict[str, str], cwd: Path | None = None) -> subprocess.Popen[bytes]:
    """Start a server process and wait until it accepts connections on ``port``."""
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env, cwd=cwd)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                return process
        time.sleep(0.05)
    process.kill()
    raise SystemExit(f"server on port {port} did not start")


def seed_credit(worker_home: Path, requester: Identity) -> None:
    """Record in the worker's ledger that ``requester`` has served the grid a great deal."""
    earned = {
        "version": 1, "jobId": "seed", "nonce": new_nonce(), "requesterPubkey": Identity.generate().pubkey,
        "workerPubkey": requester.pubkey, "model": "demo-fast", "inputTokens": 10**9,
        "outputTokens": 10**9, "startedAt": 0, "completedAt": 0,
    }
    with Ledger(worker_home / "ledger.sqlite3") as ledger:
        ledger.add(sign_receipt(earned, requester))


def median_interval(values: list[float], confidence: float = 0.95) -> tuple[float, float]:
    """A distribution-free confidence interval for the median of ``values``' population: the
    k-th smallest and k-th largest value, for the largest k whose coverage, 1 − 2·P(B < k) with
    B ~ Binomial(n, ½), is at least ``confidence`` (the order-statistic interval for a
    quantile, as in Conover, *Practical Nonparametric Statistics*). Fewer than 6 values
    cannot reach 95%: then the smallest and largest, which cover less.
    """
    ordered, n = sorted(values), len(values)

    k, below = 0, 0  # below: 2^n · P(B < k + 1), summed as k grows
    while k + 1 <= n - k:
        below += math.comb(n, k)
        if 1 - 2 * below / 2**n < confidence:
            break
        k += 1
    if k == 0:
        return ordered[0], ordered[-1]
    return ordered[k - 1], ordered[n - k]
