"""`lobstah-core openclaw` merges the grid into openclaw's config and clobbers nothing."""

from __future__ import annotations

import asyncio
import json
import os
import stat
import subprocess
import sys
from pathlib import Path

from lobstah_core.http import RunningServer
from lobstah_core.openclaw import lobstah_provider, merge_provider, write_config
from lobstah_core.protocol import Identity

from ..conftest import StartRouter, StartWorker, add_peer
from .test_cli import assert_clean_failure
from .test_worker_start import free_port

EXISTING = {
    "models": {"mode": "replace", "providers": {"anthropic": {"apiKey": "sk-keep-me"}}},
    "agents": {"defaults": {"model": {"primary": "anthropic/claude", "fallbacks": ["x"]}, "workspace": "~/w"}},
    "gateway": {"port": 18789},
}


def test_merge_keeps_everything_else() -> None:
    provider = lobstah_provider("http://127.0.0.1:17475", ["demo-fast"], "k")
    merged = merge_provider(EXISTING, provider, "demo-fast")
    assert merged["models"]["mode"] == "merge"
    assert merged["models"]["providers"]["anthropic"] == {"apiKey": "sk-keep-me"}
    assert merged["models"]["providers"]["lobstah"]["baseUrl"] == "http://127.0.0.1:17475/v1"
    model = merged["models"]["providers"]["lobstah"]["models"][0]
    assert model["id"] == "demo-fast" and model["reasoning"] is False and model["input"] == ["text"]
    assert set(model["cost"].values()) == {0} and model["contextWindow"] > 0 and model["maxTokens"] > 0
    assert merged["agents"]["defaults"]["model"] == {"primary": "lobstah/demo-fast", "fallbacks": ["x"]}
    assert merged["agents"]["defaults"]["workspace"] == "~/w" and merged["gateway"] == {"port": 18789}
    assert EXISTING["models"]["mode"] == "replace"  # the input is not modified
    assert "agents" not in merge_provider({}, provider, None)


async def test_command_against_a_running_router(start_worker: StartWorker, start_router: StartRouter, router_home: Path, tmp_path: Path) -> None:
    worker_id = Identity.from_seed(b"\xd1" * 32)
    add_peer(router_home, await start_worker(identity=worker_id), worker_id.pubkey)
    router: RunningServer = await start_router()
    config = tmp_path / "openclaw.json"
    config.write_text(json.dumps(EXISTING))

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "lobstah_core", "openclaw", "--config", str(config), "--router", router.url, *args],
                              capture_output=True, text=True, timeout=30, env={**os.environ, "LOBSTAH_HOME": str(tmp_path / "h")})

    dry = await asyncio.to_thread(run, "--dry-run", "--set-default")
    assert json.loads(dry.stdout)["agents"]["defaults"]["model"]["primary"] == "lobstah/demo-fast"
    assert json.loads(config.read_text()) == EXISTING

    done = await asyncio.to_thread(run, "--set-default", "--model", "demo-smart")
    assert done.returncode == 0, done.stderr
    written = json.loads(config.read_text())
    assert [m["id"] for m in written["models"]["providers"]["lobstah"]["models"]] == ["demo-fast", "demo-smart"]
    assert written["agents"]["defaults"]["model"]["primary"] == "lobstah/demo-smart"
    assert written["models"]["providers"]["anthropic"] == {"apiKey": "sk-keep-me"}
    backups = list(tmp_path.glob("openclaw.json.*.bak"))
    assert len(backups) == 1 and json.loads(backups[0].read_text()) == EXISTING

    tagged = await asyncio.to_thread(run, "--dry-run", "--set-default", "--model", "demo-smart:latest")
    assert json.loads(tagged.stdout)["agents"]["defaults"]["model"]["primary"] == "lobstah/demo-smart"

    wrong = await asyncio.to_thread(run, "--set-default", "--model", "gpt-9")
    assert wrong.returncode == 1 and "does not offer 'gpt-9'" in wrong.stderr


def test_router_down_and_broken_config(cli, tmp_path: Path) -> None:
    config = tmp_path / "openclaw.json"
    port = free_port()
    assert_clean_failure(cli("openclaw", "--config", str(config), "--router", f"http://127.0.0.1:{port}"), "no router answers")
    assert not config.exists()
    config.write_text("{ // json5 comment\n}")
    assert_clean_failure(cli("openclaw", "--config", str(config)), "not plain JSON")
    assert config.read_text() == "{ // json5 comment\n}"
    config.write_bytes(b"\xff\xfe{}")  # saved as UTF-16, say: was a UnicodeDecodeError traceback
    assert_clean_failure(cli("openclaw", "--config", str(config)), "not plain JSON")
    assert config.read_bytes() == b"\xff\xfe{}"


def test_a_private_config_stays_private_and_so_does_its_backup(tmp_path: Path) -> None:
    """openclaw's config holds other providers' API keys; ours adds the router's. Rewriting a
    0600 file as 0644 (and its backup too) handed every key to every local user."""
    path = tmp_path / "openclaw.json"
    path.write_text(json.dumps(EXISTING))
    path.chmod(0o600)
    provider = lobstah_provider("http://127.0.0.1:17475", ["demo-fast"], "router-key")
    backup = write_config(path, merge_provider(EXISTING, provider, None))
    assert backup is not None and json.loads(backup.read_text()) == EXISTING
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(backup.stat().st_mode) == 0o600
    again = write_config(path, EXISTING)  # within the same second: a backup of its own
    assert again is not None and again != backup and json.loads(backup.read_text()) == EXISTING
    fresh = tmp_path / "new" / "openclaw.json"
    write_config(fresh, merge_provider({}, provider, None))
    assert stat.S_IMODE(fresh.stat().st_mode) == 0o600  # a new one: only its owner's, as identity.json
