"""The real-model tier: SmolLM2-135M in llama.cpp behind real workers and routers.

Every module here sets ``pytestmark = pytest.mark.model``: ``make test-model`` runs them,
``make test`` leaves them out. They need the ``llamacpp`` extra. Answers are asked for at temperature 0 with a fixed seed, so a
prompt gets the same tokens every time.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openai
import pytest

from lobstah_core.engines.llamacpp import DEFAULT_MODEL_NAME, LlamaCppEngine, packaged_model_path
from lobstah_core.http import RunningServer

from ..conftest import WORKER, StartRouter, StartWorker, add_peer, free_port, sdk_client, wait_for_port

MODEL = DEFAULT_MODEL_NAME
#: Same tokens for the same prompt: greedy sampling.
GREEDY: dict[str, Any] = {"temperature": 0, "seed": 7}


def sdk(router: RunningServer) -> openai.AsyncOpenAI:
    return sdk_client(f"{router.url}/v1", timeout=120)


def ask(text: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": text}]


@pytest.fixture
async def grid(start_worker: StartWorker, start_router: StartRouter, router_home: Path) -> RunningServer:
    """A router over one worker that runs the packaged model; returns the router."""
    worker = await start_worker(LlamaCppEngine())
    add_peer(router_home, worker, WORKER.pubkey, label="llama")
    return await start_router()


@pytest.fixture
def llama_cpp_server(tmp_path: Path) -> Iterator[str]:
    """``python -m llama_cpp.server`` (llama-cpp-python's OpenAI-compatible server) serving the
    packaged model as ``smollm2:135m``; yields its base URL as the openai SDK takes it."""
    port = free_port()
    log = (tmp_path / "llama_cpp_server.log").open("w")
    process = subprocess.Popen(
        [sys.executable, "-m", "llama_cpp.server", "--model", str(packaged_model_path()), "--model_alias", MODEL,
         "--host", "127.0.0.1", "--port", str(port), "--n_ctx", "2048", "--verbose", "False"],
        stdout=log, stderr=subprocess.STDOUT,
    )
    wait_for_port(process, port, f"llama_cpp.server (log: {log.name})", timeout=60)
    yield f"http://127.0.0.1:{port}/v1"
    process.terminate()
    process.wait(timeout=15)
    log.close()
