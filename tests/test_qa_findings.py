"""Defects found by hostile QA (branch qa): each test fails on the code it was written against."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from lobstah_core.config import WorkerSettings
from lobstah_core.engines.demo import DemoEngine
from lobstah_core.http import RunningServer
from lobstah_core.worker import create_app

from .conftest import WORKER


@pytest.mark.parametrize("path", ["/v1/chat/completions", "/v1/jobs"])
async def test_a_request_body_that_stalls_is_not_held_open_forever(tmp_path: Path, path: str) -> None:
    """README "Bounded connections": a connection idle for the idle limit is closed. A client
    that sends its headers and part of its body, then goes silent, must not pin a handler (and
    a socket) forever: a few hundred of them exhaust a Mac's 256 open files."""
    app = create_app(WorkerSettings(port=0), WORKER, DemoEngine(), tmp_path / "worker-home")
    server = await RunningServer(app, "127.0.0.1", 0, "worker", idle_connection_s=0.3).start()
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        writer.write(
            f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            "Content-Length: 100\r\n\r\n{\"mo".encode()
        )
        await writer.drain()
        try:
            # closed, or answered (408/400) — anything but silence long after the idle limit
            await asyncio.wait_for(reader.read(), 5)
        except asyncio.TimeoutError:
            pytest.fail("the server still holds a stalled request body 5 s after a 0.3 s idle limit")
        finally:
            writer.close()
    finally:
        await server.stop()
