"""``tasks.run``: the command line's servers run on uvloop where it is installed, else asyncio."""

from __future__ import annotations

import asyncio
import sys

import pytest

from lobstah_core.tasks import run


async def loop_module() -> str:
    await asyncio.sleep(0)
    return type(asyncio.get_running_loop()).__module__


@pytest.mark.skipif(sys.platform == "win32", reason="uvloop is not built for Windows")
def test_servers_run_on_uvloop_where_it_is_installed() -> None:
    assert run(loop_module()).startswith("uvloop")


def test_without_uvloop_they_run_on_asyncios_own_loop(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "uvloop", None)  # import uvloop now raises ImportError
    assert run(loop_module()).startswith("asyncio")
