"""The commands a newcomer types for a real model: ``worker start --engine llamacpp``."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from ..conftest import free_port
from .conftest import MODEL, ask

pytestmark = pytest.mark.model


def test_worker_start_serves_the_packaged_model(home: Path) -> None:
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "lobstah_core", "worker", "start", "--engine", "llamacpp", "--port", str(port)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env={**os.environ, "LOBSTAH_HOME": str(home)},
    )
    try:
        assert process.stdout is not None
        banner = "".join(process.stdout.readline() for _ in range(6))
        assert f"engine       llamacpp ({MODEL})" in banner and "concurrency  1" in banner
        response = httpx.post(f"http://127.0.0.1:{port}/v1/chat/completions", timeout=60,
                              json={"model": MODEL, "messages": ask("Hi!"), "max_tokens": 4, "temperature": 0})
        assert response.status_code == 200 and response.json()["usage"]["completion_tokens"] > 0
        assert "x-lobstah-receipt" in response.headers
    finally:
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=30)
    assert process.returncode == 0 and "Traceback" not in stderr
