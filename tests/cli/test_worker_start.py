"""`lobstah-core worker start` as a newcomer runs it: banner, curl-able, clean on SIGTERM."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import httpx

from lobstah_core.protocol import decode_receipt_header, verify_receipt

from ..conftest import Run


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_demo_worker_serves_and_stops_cleanly(home: Path) -> None:
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "lobstah_core", "worker", "start", "--engine", "demo", "--port", str(port), "--label", "attic", "--demo-delay", "0"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env={**os.environ, "LOBSTAH_HOME": str(home)},
    )
    try:
        assert process.stdout is not None
        banner = [process.stdout.readline() for _ in range(7)]
        assert banner[0].strip() == f"lobstah worker listening on http://127.0.0.1:{port}"
        text = "".join(banner)
        for expected in ("identity.json", "lob1", "demo (demo-fast, demo-smart)", "best-effort", "concurrency  2", "attic"):
            assert expected in text
        response = httpx.post(f"http://127.0.0.1:{port}/v1/chat/completions", json={"model": "demo-fast", "messages": [{"role": "user", "content": "hi"}]})
        signed = verify_receipt(decode_receipt_header(response.headers["x-lobstah-receipt"]))
        assert signed.receipt.worker_pubkey in text
        assert (home / "identity.json").exists()
    finally:
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=15)
    assert process.returncode == 0, stderr
    assert "Traceback" not in stderr


def test_bad_worker_flags_are_one_line_errors(cli: Run) -> None:
    for args, message in [
        (("--engine", "openai"), "needs --upstream"),
        (("--engine", "demo", "--concurrency", "0"), "concurrency"),
        (("--engine", "demo", "--port", "70000"), "port"),
    ]:
        result = cli("worker", "start", *args)
        assert result.returncode == 1 and message in result.stderr
        assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) == 1
