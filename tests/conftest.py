"""Fixtures shared by every test package."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import openai
import pytest

from lobstah_core.config import RouterSettings, WorkerSettings
from lobstah_core.engines.base import WorkerEngine
from lobstah_core.engines.demo import DemoEngine
from lobstah_core.http import RunningServer
from lobstah_core.ledger import Ledger
from lobstah_core.protocol import Identity, SignedReceipt
from lobstah_core.router import create_app as create_router
from lobstah_core.router.peers import Peer, PeerStore
from lobstah_core.worker import create_app

Run = Callable[..., subprocess.CompletedProcess[str]]
WORKER = Identity.from_seed(b"W" * 32)
ROUTER = Identity.from_seed(b"Q" * 32)

StartWorker = Callable[..., Awaitable[RunningServer]]


@pytest.fixture
async def start_worker(tmp_path: Path) -> AsyncIterator[StartWorker]:
    """Start real workers on free loopback ports (demo engine unless given); stopped after."""
    servers: list[RunningServer] = []

    async def start(
        engine: WorkerEngine | None = None,
        home: Path | None = None,
        identity: Identity = WORKER,
        **settings: Any,
    ) -> RunningServer:
        default_home = tmp_path / ("worker-home" if not servers else f"worker-home-{len(servers)}")
        clock = settings.pop("clock_ms", None)
        app = create_app(
            WorkerSettings(port=0, **settings),
            identity,
            engine or DemoEngine(),
            home or default_home,
            **({"clock_ms": clock} if clock else {}),
        )
        server = await RunningServer(app, "127.0.0.1", 0, "worker").start()
        servers.append(server)
        return server

    start.servers = servers  # type: ignore[attr-defined]  # so a test can kill its workers
    yield start
    for server in servers:
        await server.stop()


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh LOBSTAH_HOME, set for this process and for the CLI subprocesses."""
    path = tmp_path / "lobstah-home"
    monkeypatch.setenv("LOBSTAH_HOME", str(path))
    for variable in ("LOBSTAH_IDENTITY", "LOBSTAH_LEDGER"):
        monkeypatch.delenv(variable, raising=False)
    return path


@pytest.fixture
def cli(home: Path) -> Run:
    """Run ``lobstah-core ARGS`` in a subprocess, as a user would, with LOBSTAH_HOME=home."""

    def run(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "lobstah_core", *args],
            input=stdin,
            capture_output=True,
            text=True,
            env={**os.environ, "LOBSTAH_HOME": str(home)},
            timeout=60,
        )

    return run


ROUTER_ID = Identity.from_seed(b"Q" * 32)  # the ROUTER identity of the worker tests

StartRouter = Callable[..., Awaitable[RunningServer]]


@pytest.fixture
def router_home(tmp_path: Path) -> Path:
    return tmp_path / "router-home"


def add_peer(home: Path, server: RunningServer, pubkey: str, label: str | None = None) -> None:
    PeerStore(home / "peers.json").add(Peer(pubkey=pubkey, url=server.url, label=label))


@pytest.fixture
async def start_router(router_home: Path) -> AsyncIterator[StartRouter]:
    servers: list[RunningServer] = []

    async def start(**options: Any) -> RunningServer:
        clock = options.pop("clock_ms", None)
        extra = {"clock_ms": clock} if clock else {}
        app = create_router(RouterSettings(port=0, **options), ROUTER_ID, router_home, **extra)
        server = await RunningServer(app, "127.0.0.1", 0, "router").start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        await server.stop()


#: openai SDK clients made by :func:`sdk_client`, closed as the test that made them ends.
_SDK_CLIENTS: list[openai.AsyncOpenAI] = []


def sdk_client(base_url: str, **options: Any) -> openai.AsyncOpenAI:
    """An ``openai.AsyncOpenAI`` for ``base_url`` (api key "x", no retries unless given), closed
    on the test's own loop as the test ends (the ``closes_sdk_clients`` fixture, autouse where
    the tests use it).

    The SDK closes a client left open from its ``__del__``, on whatever loop runs when the
    garbage collector gets there: a later test's, where the close fails with "Event loop is
    closed" and its log record lands in that test (failing one that checks its log is clean).
    """
    client = openai.AsyncOpenAI(base_url=base_url, **{"api_key": "x", "max_retries": 0, **options})
    _SDK_CLIENTS.append(client)
    return client


@pytest.fixture
async def closes_sdk_clients() -> AsyncIterator[None]:
    """Close every client :func:`sdk_client` made during the test."""
    yield
    while _SDK_CLIENTS:
        await _SDK_CLIENTS.pop().close()


async def ledgered(home: Path, expected: int, timeout: float = 5.0) -> list[SignedReceipt]:
    """The receipts in the ledger of ``home`` once ``expected`` are there (routers and workers
    write them in batches, after the client has its answer)."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        with Ledger(home / "ledger.sqlite3") as ledger:
            receipts = ledger.recent(10_000)
        if len(receipts) >= expected or asyncio.get_running_loop().time() > deadline:
            return receipts
        await asyncio.sleep(0.02)


NOSTR_RELAY_CONFIG = """
DEBUG: false
relay_name: lobstah test relay
storage:
  sqlalchemy.url: sqlite+aiosqlite:///{db}
  num_concurrent_reqs: 4
  num_concurrent_adds: 1
  validators:
    - nostr_relay.validators.is_signed
    - nostr_relay.validators.is_recent
verification:
  nip05_verification: disabled
gunicorn:
  bind: 127.0.0.1:{port}
  workers: 1
  loglevel: warning
  reload: false
authentication:
  enabled: false
"""


def free_port() -> int:
    """A loopback port free right now (for a server in another process)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def wait_for_port(process: subprocess.Popen[Any], port: int, name: str, timeout: float = 30.0) -> None:
    """Wait until ``process`` listens on loopback ``port``.

    Raises:
        RuntimeError: it exited or did not listen within ``timeout`` seconds (it is killed).
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and process.poll() is None:
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    process.kill()
    raise RuntimeError(f"{name} did not start")


@pytest.fixture
def nostr_relay(tmp_path: Path) -> Iterator[str]:
    """A real Nostr relay (the `nostr-relay` package from PyPI) on a free loopback port."""
    port = free_port()
    config = tmp_path / "relay.yaml"
    config.write_text(NOSTR_RELAY_CONFIG.format(db=tmp_path / "relay.sqlite3", port=port))
    relay_bin = Path(sys.executable).with_name("nostr-relay")
    process = subprocess.Popen([str(relay_bin), "-c", str(config), "serve"], cwd=tmp_path,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=dict(os.environ))
    wait_for_port(process, port, "nostr-relay")
    yield f"ws://127.0.0.1:{port}"
    process.terminate()
    process.wait(timeout=10)
