"""Issue 5's "done when": no config edited by hand; a worker announced on a tracker is found by
`peers sync` on another node and serves requests through that node's router."""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

from .test_cli import assert_clean_failure
from .test_worker_start import free_port


def spawn(args: list[str], home: Path, **env: str) -> subprocess.Popen[bytes]:
    # Unbuffered bytes: select() then tells the truth about what is left to read.
    return subprocess.Popen([sys.executable, "-m", "lobstah_core", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            bufsize=0, env={**os.environ, "LOBSTAH_HOME": str(home), **env})


def stop(process: subprocess.Popen[bytes]) -> str:
    process.send_signal(signal.SIGTERM)
    out, err = process.communicate(timeout=20)
    assert process.returncode == 0 and b"Traceback" not in err, err
    return out.decode()


def lines(process: subprocess.Popen[bytes], until: str, timeout: float = 20) -> str:
    """stdout lines up to and including the first containing ``until`` (never waits forever)."""
    assert process.stdout is not None
    seen: list[str] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready, _, _ = select.select([process.stdout], [], [], 0.2)
        if ready:
            line = process.stdout.readline().decode()
            if not line:
                break
            seen.append(line)
            if until in line:
                return "".join(seen)
    raise AssertionError(f"never printed {until!r}; got: {''.join(seen)!r}")


def test_announce_sync_serve_withdraw(tmp_path: Path) -> None:
    tracker_port, worker_port, router_port = free_port(), free_port(), free_port()
    tracker_url = f"http://127.0.0.1:{tracker_port}"
    tracker = spawn(["tracker", "start", "--port", str(tracker_port)], tmp_path / "tracker")
    worker = router = None
    try:
        assert "lobstah tracker listening" in lines(tracker, "peers sync")
        worker = spawn(["worker", "start", "--engine", "demo", "--port", str(worker_port), "--demo-delay", "0",
                        "--announce-to", tracker_url, "--announce-url", f"http://127.0.0.1:{worker_port}",
                        "--announce-label", "attic"], tmp_path / "machine-a")
        banner = lines(worker, "bound to loopback")
        assert "announced to" in banner

        machine_b = tmp_path / "machine-b"
        sync = subprocess.run([sys.executable, "-m", "lobstah_core", "peers", "sync", tracker_url, "--allow-loopback", "--json"],
                              capture_output=True, text=True, env={**os.environ, "LOBSTAH_HOME": str(machine_b)}, timeout=30)
        report = json.loads(sync.stdout)
        assert len(report["added"]) == 1 and report["rejected"] == []
        router = spawn(["router", "start", "--port", str(router_port)], machine_b, LOBSTAH_ALLOW_LOOPBACK="1")
        assert "(1 answering)" in lines(router, "peers ")
        reply = httpx.post(f"http://127.0.0.1:{router_port}/v1/chat/completions",
                           json={"model": "demo-fast", "messages": [{"role": "user", "content": "across machines"}]}, timeout=20)
        assert reply.status_code == 200

        assert "withdrawn" in stop(worker)
        worker = None
        assert httpx.get(f"{tracker_url}/peers").json()["count"] == 0
    finally:
        for process in (router, worker, tracker):
            if process is not None:
                stop(process)


def test_announce_flags_must_come_together(cli) -> None:
    assert_clean_failure(cli("worker", "start", "--engine", "demo", "--announce-to", "http://127.0.0.1:1"), "--announce-url")
    assert_clean_failure(cli("worker", "start", "--engine", "demo", "--announce-url", "http://127.0.0.1:1"), "--announce-to")
    assert_clean_failure(cli("peers", "sync", f"http://127.0.0.1:{free_port()}"), "cannot reach tracker")


def test_publish_via_nostr_and_gossip(tmp_path: Path, nostr_relay: str) -> None:
    worker_port = free_port()
    machine_a, machine_b = tmp_path / "machine-a", tmp_path / "machine-b"
    worker = spawn(["worker", "start", "--engine", "demo", "--port", str(worker_port), "--publish-via-nostr",
                    "--nostr-relay", nostr_relay, "--announce-url", f"http://127.0.0.1:{worker_port}"], machine_a)
    try:
        assert "published to 1/1 Nostr relays" in lines(worker, "bound to loopback")
        identity = json.loads((machine_a / "identity.json").read_text())
        assert len(identity["nostrSecretKey"]) == 64 and identity["publicKey"].startswith("lob1")
        assert (machine_a / "identity.json").stat().st_mode & 0o777 == 0o600
        result = subprocess.run([sys.executable, "-m", "lobstah_core", "peers", "gossip", "--nostr-relay", nostr_relay,
                                 "--allow-loopback", "--idle", "1", "--json"], capture_output=True, text=True, timeout=60,
                                env={**os.environ, "LOBSTAH_HOME": str(machine_b)})
        assert len(json.loads(result.stdout)["added"]) == 1
        assert json.loads((machine_b / "peers.json").read_text())[0]["source"] == "nostr"
    finally:
        assert "withdrawn from 1/1 Nostr relays" in stop(worker)
