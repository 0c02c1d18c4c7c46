"""The headless-browser tier: the router's web dashboard in Debian's chromium, driven by
playwright-core (tests/browser/dashboard.mjs), sees a receipt appear live.

Its dependencies are installed by ``.ci/browser-deps`` (chromium from apt, playwright-core from
npm into tests/browser/node_modules); ``.ci/run`` installs them and sets
``LOBSTAH_BROWSER_TESTS=1``, which turns a missing dependency into a failure instead of a skip.
``UPDATE_SCREENSHOTS=1`` copies the page's screenshot to screenshots/web-dashboard.png.
"""

from __future__ import annotations

import asyncio
import os
import shutil
from pathlib import Path

import httpx
import pytest

from lobstah_core.protocol import Identity

from ..conftest import StartRouter, StartWorker, add_peer

HERE = Path(__file__).parent
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
WORKER = Identity.from_seed(b"\xa7" * 32)


def _missing() -> str | None:
    if shutil.which("node") is None:
        return "node is not installed"
    if not (HERE / "node_modules" / "playwright-core").is_dir():
        return "playwright-core is not installed (.ci/browser-deps)"
    if not Path(CHROMIUM).exists():
        return f"no chromium at {CHROMIUM} (.ci/browser-deps)"
    return None


pytestmark = pytest.mark.skipif(
    _missing() is not None and os.environ.get("LOBSTAH_BROWSER_TESTS") != "1", reason=str(_missing())
)


async def test_a_receipt_appears_live(
    start_worker: StartWorker, start_router: StartRouter, router_home: Path, tmp_path: Path
) -> None:
    add_peer(router_home, await start_worker(identity=WORKER), WORKER.pubkey, label="kitchen")
    router = await start_router()
    shot = tmp_path / "dashboard.png"
    browser = await asyncio.create_subprocess_exec(
        "node", str(HERE / "dashboard.mjs"), router.url, str(shot),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env={**os.environ, "CHROMIUM": CHROMIUM},
    )
    try:
        ready = await asyncio.wait_for(browser.stdout.readline(), 90)  # type: ignore[union-attr]
        assert ready == b"ready\n", (ready, await browser.stderr.read())  # type: ignore[union-attr]
        async with httpx.AsyncClient(base_url=router.url, timeout=20) as http:
            chat = {"model": "demo-fast", "messages": [{"role": "user", "content": "show me on the page"}]}
            assert (await http.post("/v1/chat/completions", json=chat)).status_code == 200
        out, err = await asyncio.wait_for(browser.communicate(), 90)
    finally:
        if browser.returncode is None:
            browser.kill()
            await browser.wait()
    assert browser.returncode == 0, err.decode()
    assert out.decode().splitlines()[-1] == "receipt demo-fast"
    if os.environ.get("UPDATE_SCREENSHOTS") == "1":
        shutil.copy(shot, HERE.parent.parent / "screenshots" / "web-dashboard.png")
