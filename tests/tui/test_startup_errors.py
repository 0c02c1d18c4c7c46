"""`lobstah-tui` that cannot start says why in one line on stderr and exits 1 (run as a user
would, in a subprocess; the escape sequences Textual writes to enter and leave its screen are
not lines a user sees, so they are dropped before counting)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import socket
import sys
from pathlib import Path

import pytest

from ..conftest import StartWorker

TERMINAL_CONTROL = re.compile(r"\x1b(\[[0-9;?<>=$]*[a-zA-Z~]|\][^\x07\x1b]*(\x07|\x1b\\)|[=>])")


async def tui(*args: str, home: str) -> tuple[int, list[str]]:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-c", "import sys; from lobstah_tui.app import main; sys.exit(main(sys.argv[1:]))", *args,
        stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "LOBSTAH_HOME": home},
    )
    _, stderr = await asyncio.wait_for(process.communicate(), 60)
    lines = [line for line in TERMINAL_CONTROL.sub("", stderr.decode()).splitlines() if line.strip()]
    assert process.returncode is not None
    return process.returncode, lines


def assert_one_line(result: tuple[int, list[str]], message: str) -> None:
    code, lines = result
    assert code == 1, lines
    assert len(lines) == 1 and message in lines[0], lines


async def test_ports_taken_by_a_running_node(tmp_path: Path) -> None:
    # As after `lobstah-core serve` in another terminal: the dashboard's default ports are taken
    # (by us here, or by whoever already holds them: taken either way).
    with contextlib.ExitStack() as held:
        for port in (17474, 17475):
            with contextlib.suppress(OSError):
                taken = held.enter_context(socket.socket())
                taken.bind(("127.0.0.1", port))
                taken.listen()
        result = await tui("--engine", "demo", home=str(tmp_path / "home"))
    assert_one_line(result, "address already in use")
    assert "--attach" in result[1][0]  # and what to do about it


@pytest.mark.skipif(not Path("/sys").is_dir(), reason="needs a directory nobody may write into, root included")
async def test_a_read_only_home() -> None:
    assert_one_line(await tui("--engine", "demo", home="/sys/lobstah-home"), "/sys/lobstah-home")


async def test_attach_pointed_at_a_worker(start_worker: StartWorker, tmp_path: Path) -> None:
    worker = await start_worker()
    assert_one_line(await tui("--attach", worker.url, home=str(tmp_path)), "is a worker; attach to its node's router")


@pytest.mark.parametrize("url", ["http://[::1", "http://127.0.0.1:notaport", "ftp://127.0.0.1:17475"])
async def test_attach_to_a_url_that_is_no_url(tmp_path: Path, url: str) -> None:
    # was an httpx.InvalidURL traceback for the first two
    code, lines = await tui("--attach", url, home=str(tmp_path))
    assert code != 0 and len(lines) == 1 and "not a router URL" in lines[0], lines


async def test_python_dash_m_runs_the_dashboard_as_the_core_runs_its_cli(tmp_path: Path) -> None:
    """``python -m lobstah_core`` works, so users try ``python -m lobstah_tui`` too (with a venv
    not on PATH, say): it used to say the package cannot be executed."""
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "lobstah_tui", "--attach", "http://127.0.0.1:9",
        stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "LOBSTAH_HOME": str(tmp_path / "home")},
    )
    _, stderr = await asyncio.wait_for(process.communicate(), 60)
    lines = [line for line in TERMINAL_CONTROL.sub("", stderr.decode()).splitlines() if line.strip()]
    assert_one_line((process.returncode or 0, lines), "lobstah-tui: error: no Lobstah router answers at http://127.0.0.1:9")
