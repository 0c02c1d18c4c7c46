"""Everyday mistakes an operator makes with the CLI: each is one line on stderr and a non-zero
exit, never a traceback, and nothing on disk changes."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from lobstah_core.errors import ConfigError
from lobstah_core.openclaw import lobstah_provider, merge_provider
from lobstah_core.protocol import Identity

from ..conftest import Run
from ..factories import signed_receipt
from .test_cli import assert_clean_failure

PUBKEY = "lob1" + "ab" * 32


def run_with_home(home: str, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "lobstah_core", *args], capture_output=True, text=True,
                          env={**os.environ, "LOBSTAH_HOME": home, **env}, timeout=60)


def test_a_home_that_is_a_file(tmp_path: Path) -> None:
    home = tmp_path / "not-a-directory"
    home.write_text("x")
    assert_clean_failure(run_with_home(str(home), "ledger", "export"), "a file is in the way")
    assert_clean_failure(run_with_home(str(home / "sub"), "peers", "add", PUBKEY, "http://127.0.0.1:1", "--no-check"),
                         "Not a directory")
    assert home.read_text() == "x"


@pytest.mark.skipif(not Path("/sys").is_dir(), reason="needs a directory nobody may write into, root included")
def test_a_home_nobody_may_write() -> None:
    # /sys refuses mkdir even to root (tests may run as root, for whom chmod 555 means nothing).
    result = run_with_home("/sys/lobstah-home", "peers", "add", PUBKEY, "http://127.0.0.1:1", "--no-check")
    assert_clean_failure(result, "permission denied")


def test_router_start_on_a_busy_port_closes_what_it_opened(cli: Run, home: Path) -> None:
    assert cli("peers", "add", PUBKEY, "http://127.0.0.1:1", "--no-check").returncode == 0
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        result = cli("router", "start", "--port", str(taken.getsockname()[1]))
    assert_clean_failure(result, "address already in use")  # and no "Unclosed client session"


def test_gossip_fails_when_no_relay_answers(cli: Run, home: Path) -> None:
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    result = cli("peers", "gossip", "--nostr-relay", f"ws://127.0.0.1:{port}", "--idle", "1")
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == ["lobstah-core: error: no relay answered (1 tried); peers.json is unchanged"]


@pytest.mark.parametrize("args, message", [
    (("worker", "start", "--engine", "demo", "--demo-delay", "-1"), "--demo-delay: must be a finite number >= 0"),
    (("worker", "start", "--engine", "demo", "--demo-tps", "-5"), "--demo-tps: must be a finite number >= 0"),
    (("worker", "start", "--engine", "demo", "--demo-tps", "nan"), "--demo-tps: must be a finite number >= 0"),
    (("worker", "start", "--engine", "demo", "--label", "x" * 5000), "at most 64 characters"),
    (("serve", "--engine", "demo", "--label", "x" * 5000), "at most 64 characters"),
    (("peers", "add", PUBKEY, "http://127.0.0.1:1", "x" * 5000, "--no-check"), "at most 64 characters"),
    (("peers", "add", PUBKEY, "http://127.0.0.1:1", "two\nlines", "--no-check"), "not a valid label"),
    (("peers", "gossip", "--nostr-relay", "ws://127.0.0.1:1", "--idle", "nan"), "--idle: must be a finite number >= 0"),
    (("peers", "gossip", "--nostr-relay", "ws://127.0.0.1:1", "--idle", "-1"), "--idle: must be a finite number >= 0"),
])
def test_bounded_flags(cli: Run, home: Path, args: tuple[str, ...], message: str) -> None:
    assert_clean_failure(cli(*args), message)
    assert not (home / "peers.json").exists()


def test_ledger_import_reads_lobstah_ledger(cli: Run, home: Path, tmp_path: Path) -> None:
    js_ledger = tmp_path / "elsewhere.jsonl"
    receipt = signed_receipt(Identity.from_seed(b"W" * 32), Identity.from_seed(b"R" * 32))
    js_ledger.write_text(receipt.model_dump_json(by_alias=True) + "\n")
    result = run_with_home(str(home), "ledger", "import", LOBSTAH_LEDGER=str(js_ledger))
    assert result.returncode == 0, result.stderr
    assert "added 1" in result.stdout
    assert_clean_failure(cli("ledger", "import"), f"no such file: {home / 'ledger.jsonl'}")


@pytest.mark.parametrize("config, where", [
    ({"models": {"providers": "anthropic"}}, "models.providers is a str"),
    ({"models": ["x"]}, "models is a list"),
    ({"agents": {"defaults": "x"}}, "agents.defaults is a str"),
])
def test_openclaw_configs_of_the_wrong_shape_are_refused(config: dict, where: str) -> None:
    with pytest.raises(ConfigError, match=where):
        merge_provider(config, lobstah_provider("http://127.0.0.1:17475", ["demo-fast"], "k"), "demo-fast")


def test_openclaw_default_model_given_as_a_string_stays_a_string() -> None:
    config = {"agents": {"defaults": {"model": "anthropic/claude"}}}
    merged = merge_provider(config, lobstah_provider("http://127.0.0.1:17475", ["demo-fast"], "k"), "demo-fast")
    assert merged["agents"]["defaults"]["model"] == "lobstah/demo-fast"
    assert config["agents"]["defaults"]["model"] == "anthropic/claude"


@pytest.mark.parametrize("args", [
    ("batch", "list", "--router", "http://[::1"),
    ("batch", "status", "batch_1", "--router", "http://127.0.0.1:notaport"),
    ("batch", "list", "--router", "ftp://127.0.0.1:17475"),
    ("openclaw", "--dry-run", "--router", "http://[::1"),
    ("openclaw", "--dry-run", "--router", "127.0.0.1:17475"),
])
def test_a_router_url_that_is_no_url(cli: Run, args: tuple[str, ...]) -> None:
    """A mistyped --router was an httpx.InvalidURL traceback (a bracket left open, a port that
    is no number) or "no router answers at ftp://..." as if it were only down."""
    assert_clean_failure(cli(*args), "not a router URL")


@pytest.mark.parametrize("store, args", [
    ("batches.sqlite3", ("router", "start", "--port", "0")),
    ("router-jobs.sqlite3", ("router", "start", "--port", "0")),
    ("jobs.sqlite3", ("worker", "start", "--engine", "demo", "--port", "0")),
    ("batches.sqlite3", ("serve", "--engine", "demo", "--router-port", "0", "--worker-port", "0", "--seconds", "1")),
])
def test_a_store_in_the_home_that_is_not_a_database(cli: Run, home: Path, store: str, args: tuple[str, ...]) -> None:
    """A damaged store (a disk error, a file copied over it) stops the server with one line
    naming the file, as a damaged ledger does, not a sqlite3 traceback; the file is left as
    it was for its owner to look at."""
    assert cli("keygen").returncode == 0
    damaged = b"not a database, whatever its name says" * 4
    (home / store).write_bytes(damaged)
    assert_clean_failure(cli(*args), f"{home / store}: file is not a database")
    assert (home / store).read_bytes() == damaged
