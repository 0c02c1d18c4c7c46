"""`lobstah-core peers …` and `lobstah-core router start` as a user runs them."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import openai

from lobstah_core.protocol import Identity

from ..conftest import WORKER, Run, StartWorker
from .test_cli import assert_clean_failure
from .test_worker_start import free_port

PEER = Identity.from_seed(b"P" * 32).pubkey


def test_peers_add_list_remove_in_js_format(cli: Run, home: Path) -> None:
    assert "no peers yet" in cli("peers", "list").stdout
    assert cli("peers", "add", PEER, "http://192.0.2.10:17474", "attic", "--no-check").stdout.startswith("added attic")
    assert cli("peers", "add", PEER, "http://192.0.2.11:17474", "attic", "--no-check").stdout.startswith("updated attic")
    assert json.loads((home / "peers.json").read_text()) == [{"pubkey": PEER, "url": "http://192.0.2.11:17474", "label": "attic"}]
    listed = json.loads(cli("peers", "list", "--json").stdout)
    assert listed == [{"pubkey": PEER, "url": "http://192.0.2.11:17474", "label": "attic", "source": "manual"}]
    assert "attic" in cli("peers", "list").stdout
    assert cli("peers", "remove", PEER).returncode == 0
    assert json.loads((home / "peers.json").read_text()) == []
    assert_clean_failure(cli("peers", "remove", PEER), "no peer")


async def test_peers_add_asks_the_peer_who_it_is(cli: Run, home: Path, start_worker: StartWorker) -> None:
    worker = await start_worker(identity=WORKER)
    right = await asyncio.to_thread(cli, "peers", "add", WORKER.pubkey, worker.url, "attic")
    assert right.returncode == 0 and right.stdout.splitlines()[1] == "it answers; models: demo-fast, demo-smart"
    wrong = await asyncio.to_thread(cli, "peers", "add", PEER, worker.url, "typo")
    assert wrong.returncode == 0 and "until the keys match" in wrong.stderr and "Traceback" not in wrong.stderr
    off = await asyncio.to_thread(cli, "peers", "add", PEER, f"http://127.0.0.1:{free_port()}", "asleep")
    assert off.returncode == 0 and "not answering now" in off.stderr
    # Each one is in the list all the same: a machine may be off, or re-keyed, when added.
    assert [p["label"] for p in json.loads((home / "peers.json").read_text())] == ["attic", "asleep"]


def test_peers_add_refuses_nonsense(cli: Run, home: Path) -> None:
    assert_clean_failure(cli("peers", "add", "lob1xyz", "http://192.0.2.10:17474"), "not a valid peer")
    assert_clean_failure(cli("peers", "add", PEER, "ftp://192.0.2.10"), "http or https")
    home.mkdir(exist_ok=True)
    (home / "peers.json").write_text('{"not": "a list"}')
    assert_clean_failure(cli("peers", "list"), "not a valid peer list")
    assert (home / "peers.json").read_text() == '{"not": "a list"}'


def test_router_start_serves_openai_clients_over_a_cli_started_worker(home: Path) -> None:
    worker_port, router_port = free_port(), free_port()
    env = {**os.environ, "LOBSTAH_HOME": str(home)}
    worker = subprocess.Popen(
        [sys.executable, "-m", "lobstah_core", "worker", "start", "--engine", "demo", "--port", str(worker_port), "--demo-delay", "0", "--demo-tps", "0"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
    )
    router = None
    try:
        assert worker.stdout is not None
        pubkey = [worker.stdout.readline() for _ in range(3)][2].split()[-1]
        subprocess.run([sys.executable, "-m", "lobstah_core", "peers", "add", pubkey, f"http://127.0.0.1:{worker_port}", "self"], env=env, check=True, capture_output=True)
        router = subprocess.Popen(
            [sys.executable, "-m", "lobstah_core", "router", "start", "--port", str(router_port)],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
        )
        assert router.stdout is not None
        banner = "".join(router.stdout.readline() for _ in range(5))
        assert f"http://127.0.0.1:{router_port}/v1" in banner and "1 in" in banner and "(1 answering)" in banner
        client = openai.OpenAI(base_url=f"http://127.0.0.1:{router_port}/v1", api_key="anything", max_retries=0)
        reply = client.chat.completions.create(model="demo-fast", messages=[{"role": "user", "content": "hi"}], max_tokens=3)
        assert reply.usage is not None and reply.usage.completion_tokens == 3
    finally:
        for process in (router, worker):
            if process is not None:
                process.send_signal(signal.SIGTERM)
                _, stderr = process.communicate(timeout=15)
                assert process.returncode == 0 and "Traceback" not in stderr
    # One home, one key: the node served itself. The one receipt is both earned and spent.
    result = subprocess.run([sys.executable, "-m", "lobstah_core", "balance", "--json"], env=env, capture_output=True, text=True, check=True)
    balance = json.loads(result.stdout)
    assert balance["totals"]["receipts"] == 1
    assert balance["self"]["earned"] == balance["self"]["spent"] > 0 and balance["self"]["net"] == 0


def test_a_peer_list_that_is_not_utf8(cli: Run, home: Path) -> None:
    """A peers.json saved in another encoding (or damaged) was a UnicodeDecodeError traceback."""
    home.mkdir(exist_ok=True)
    (home / "peers.json").write_bytes(b"\xff\xfe[]")
    assert_clean_failure(cli("peers", "list"), "not a valid peer list")
    assert_clean_failure(cli("peers", "add", PEER, "http://192.0.2.10:17474", "--no-check"), "not a valid peer list")
    assert (home / "peers.json").read_bytes() == b"\xff\xfe[]"
