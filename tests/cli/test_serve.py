"""`lobstah-core serve`: the headless node as launchd/systemd would run it."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

from ..conftest import Run
from .test_cli import assert_clean_failure
from .test_worker_start import free_port


def test_serve_runs_router_and_worker_and_stops_on_sigterm(home: Path) -> None:
    router_port, worker_port = free_port(), free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "lobstah_core", "serve", "--engine", "demo", "--router-port", str(router_port),
         "--worker-port", str(worker_port), "--label", "attic"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env={**os.environ, "LOBSTAH_HOME": str(home)},
    )
    try:
        assert process.stdout is not None
        banner = "".join(process.stdout.readline() for _ in range(5))
        assert f"http://127.0.0.1:{router_port}/v1" in banner and "advertise  off" in banner and "sync       off" in banner
        assert httpx.get(f"http://127.0.0.1:{worker_port}/").text == "lobstah-worker"
        assert httpx.get(f"http://127.0.0.1:{router_port}/").text == "lobstah-router"
        worker_pubkey = httpx.get(f"http://127.0.0.1:{worker_port}/pubkey").json()["pubkey"]
        subprocess.run([sys.executable, "-m", "lobstah_core", "peers", "add", worker_pubkey, f"http://127.0.0.1:{worker_port}", "attic"],
                       env={**os.environ, "LOBSTAH_HOME": str(home)}, check=True, capture_output=True)
        for _ in range(50):
            reply = httpx.post(f"http://127.0.0.1:{router_port}/v1/chat/completions",
                               json={"model": "demo-fast", "messages": [{"role": "user", "content": "hi"}]}, timeout=10)
            if reply.status_code == 200:
                break
            time.sleep(0.2)
        assert reply.status_code == 200
        time.sleep(0.5)
    finally:
        process.send_signal(signal.SIGTERM)
        out, err = process.communicate(timeout=20)
    assert process.returncode == 0 and "Traceback" not in err, err
    assert "← earned" in out and "→ spent" in out and out.rstrip().endswith("shutting down")


def test_serve_demo_and_bad_flags(cli: Run) -> None:
    demo = cli("serve", "--demo", "--seconds", "3")
    assert demo.returncode == 0 and "lobstah demo grid" in demo.stdout and "→ spent" in demo.stdout
    assert_clean_failure(cli("serve", "--engine", "demo", "--announce-to", "http://127.0.0.1:1"), "--announce-url")
    assert_clean_failure(cli("serve", "--engine", "demo", "--router-port", str(free_port()), "--worker-port", str(free_port()),
                             "--sync", "--seconds", "1"), "tracker or a Nostr relay")


def test_serve_demo_listens_on_the_router_port_given(home: Path) -> None:
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "lobstah_core", "serve", "--demo", "--router-port", str(port), "--seconds", "20"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env={**os.environ, "LOBSTAH_HOME": str(home)},
    )
    try:
        assert process.stdout is not None
        assert f"router http://127.0.0.1:{port}/v1" in process.stdout.readline()
        assert httpx.get(f"http://127.0.0.1:{port}/").text == "lobstah-router"
        with socket.socket() as taken:  # a second demo on the same port: one line, no traceback
            taken.bind(("127.0.0.1", 0))
            taken.listen()
            busy = subprocess.run([sys.executable, "-m", "lobstah_core", "serve", "--demo", "--router-port",
                                   str(taken.getsockname()[1]), "--seconds", "1"], capture_output=True, text=True,
                                  env={**os.environ, "LOBSTAH_HOME": str(home)}, timeout=60)
        assert busy.returncode != 0 and busy.stderr.count("\n") == 1 and "cannot listen on port" in busy.stderr, busy.stderr
    finally:
        process.send_signal(signal.SIGTERM)
        process.communicate(timeout=20)


def sigterm_after_banner(args: list[str], lines: int, home: Path | None = None) -> tuple[str, str]:
    """Start ``lobstah-core ARGS``, read ``lines`` lines of its banner, send SIGTERM at once;
    its banner and output, once it has stopped cleanly (exit 0, no traceback)."""
    env = {**os.environ, "LOBSTAH_HOME": str(home)} if home is not None else None
    process = subprocess.Popen(
        [sys.executable, "-m", "lobstah_core", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
    )
    try:
        assert process.stdout is not None
        banner = "".join(process.stdout.readline() for _ in range(lines))
    finally:
        process.send_signal(signal.SIGTERM)
        out, err = process.communicate(timeout=20)
    assert process.returncode == 0 and "Traceback" not in err, err
    return banner, out


def test_a_serve_with_a_time_limit_still_stops_cleanly_on_sigterm(home: Path) -> None:
    """``--seconds`` used to replace the signal handlers: SIGTERM (systemd's stop) then killed
    the node outright, without stopping its servers or flushing its receipts."""
    banner, out = sigterm_after_banner(
        ["serve", "--engine", "demo", "--router-port", str(free_port()), "--worker-port", str(free_port()), "--seconds", "600"],
        5, home,
    )
    assert "sync       off" in banner
    assert out.rstrip().endswith("shutting down")


def test_the_demo_with_a_time_limit_still_stops_cleanly_on_sigterm() -> None:
    banner, out = sigterm_after_banner(["serve", "--demo", "--seconds", "600"], 1)
    assert "lobstah demo grid" in banner
    assert "router balance:" in out


def test_a_router_signalled_as_soon_as_its_banner_shows_stops_cleanly(home: Path) -> None:
    # Whoever reads the banner may signal at once; the handlers were installed only after it,
    # so under load a SIGTERM in between killed the process outright (exit -15).
    for _ in range(3):
        banner, out = sigterm_after_banner(["router", "start", "--port", str(free_port())], 1, home)
        assert "listening on" in banner
        assert "shutting down" in out
