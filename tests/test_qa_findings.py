"""Defects found by hostile QA (branch qa): each test fails on the code it was written against."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from lobstah_core.config import RouterSettings, WorkerSettings
from lobstah_core.engines.demo import DemoEngine
from lobstah_core.errors import EngineError
from lobstah_core.http import RunningServer
from lobstah_core.router import create_app as create_router
from lobstah_core.worker import create_app

from .conftest import ROUTER_ID, WORKER, StartRouter, StartWorker, add_peer


async def _assert_a_stalled_body_is_dropped(port: int, path: str, content_type: str = "application/json") -> None:
    """Send headers and 4 of 100 body bytes to ``port``, then nothing: the server must answer
    or close the connection within 5 s (the servers under test run with a 0.3 s idle limit)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(
        f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: {content_type}\r\n"
        "Content-Length: 100\r\n\r\n{\"mo".encode()
    )
    await writer.drain()
    try:
        # closed, or answered (408/400) — anything but silence long after the idle limit
        await asyncio.wait_for(reader.read(), 5)
    except asyncio.TimeoutError:
        pytest.fail(f"the server still holds a stalled request body on {path} 5 s after a 0.3 s idle limit")
    finally:
        writer.close()


@pytest.mark.parametrize("path", ["/v1/chat/completions", "/v1/jobs"])
async def test_a_request_body_that_stalls_is_not_held_open_forever(tmp_path: Path, path: str) -> None:
    """README "Bounded connections": a connection idle for the idle limit is closed. A client
    that sends its headers and part of its body, then goes silent, must not pin a handler (and
    a socket) forever: a few hundred of them exhaust a Mac's 256 open files."""
    app = create_app(WorkerSettings(port=0), WORKER, DemoEngine(), tmp_path / "worker-home")
    server = await RunningServer(app, "127.0.0.1", 0, "worker", idle_connection_s=0.3).start()
    try:
        await _assert_a_stalled_body_is_dropped(server.port, path)
    finally:
        await server.stop()


@pytest.mark.parametrize(
    "path, content_type",
    [
        ("/api/chat", "application/json"),
        ("/api/generate", "application/x-www-form-urlencoded"),  # what `curl -d` sends
        ("/api/embed", "application/json"),
        ("/api/embeddings", "application/json"),
        ("/api/show", "application/json"),
        ("/v1/files", "multipart/form-data; boundary=xyz"),
    ],
)
async def test_a_stalled_body_on_the_routers_ollama_and_files_routes_is_dropped(
    tmp_path: Path, path: str, content_type: str
) -> None:
    """The same bound on the router's other POST routes: its Ollama API and the batch file
    upload read their bodies without the idle watch, so a stalled client held them forever."""
    app = create_router(RouterSettings(port=0), ROUTER_ID, tmp_path / "router-home")
    server = await RunningServer(app, "127.0.0.1", 0, "router", idle_connection_s=0.3).start()
    try:
        await _assert_a_stalled_body_is_dropped(server.port, path, content_type)
    finally:
        await server.stop()


def _run_briefly(home: Path, *args: str, seconds: float = 12) -> subprocess.CompletedProcess[str] | None:
    """Run ``lobstah-core ARGS``; None if it was still running (serving) after ``seconds``."""
    process = subprocess.Popen(
        [sys.executable, "-m", "lobstah_core", *args],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env={**os.environ, "LOBSTAH_HOME": str(home)},
    )
    try:
        stdout, stderr = process.communicate(timeout=seconds)
    except subprocess.TimeoutExpired:
        process.kill()
        process.communicate(timeout=10)
        return None
    return subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.mark.parametrize(
    "args",
    [
        ("worker", "start", "--engine", "openai", "--upstream", "notaurl"),
        ("worker", "start", "--engine", "openai", "--upstream", "ftp://127.0.0.1/v1"),
        ("worker", "start", "--engine", "ollama", "--upstream", "not a url"),
        ("worker", "start", "--engine", "demo", "--demo-tps", "nan"),
        ("worker", "start", "--engine", "demo", "--demo-tps", "-1"),
        ("worker", "start", "--engine", "demo", "--demo-delay", "nan"),
        ("serve", "--no-worker", "--seconds", "nan"),
        ("router", "start", "--api-key", ""),
        ("serve", "--no-worker", "--api-key", " "),
    ],
    ids=["upstream-no-scheme", "upstream-ftp", "ollama-upstream-spaces", "demo-tps-nan", "demo-tps-negative", "demo-delay-nan", "serve-seconds-nan",
         "api-key-empty", "api-key-blank"],
)
def test_bad_flag_values_are_one_line_errors_not_a_running_server(home: Path, args: tuple[str, ...]) -> None:
    """README CLI reference: failures print one line on stderr and exit non-zero. A URL that is
    no http(s) URL, or a NaN/negative rate, is refused up front like --connect-timeout nan is,
    rather than starting a server whose every request then fails (or that never stops). An
    empty --api-key let in every request that sends no key and refused every SDK (they always
    send one); a blank one (stripped from the header before comparing) could never match."""
    port = ["--port", str(_free_port())] if args[0] in ("worker", "router") else ["--router-port", str(_free_port())]
    result = _run_briefly(home, *args, *port)
    assert result is not None, f"`lobstah-core {' '.join(args)}` started and kept running"
    assert result.returncode != 0
    assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize("args", [("ledger", "export"), ("ledger", "import", "-")], ids=["export", "import"])
def test_ledger_commands_with_a_home_that_is_a_file_are_one_line_errors(tmp_path: Path, args: tuple[str, ...]) -> None:
    """README: every command honours LOBSTAH_HOME; failures print one line and exit non-zero.
    `whoami`, `peers list`, `router start` already say "Not a directory" in one line; `ledger`
    dies with a FileExistsError traceback from mkdir."""
    home = tmp_path / "home-is-a-file"
    home.write_text("not a directory\n")
    result = subprocess.run(
        [sys.executable, "-m", "lobstah_core", *args], input="", capture_output=True, text=True,
        env={**os.environ, "LOBSTAH_HOME": str(home)}, timeout=60,
    )
    assert result.returncode != 0
    assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) == 1, result.stderr


class _BreaksOffMidStream(DemoEngine):
    """An engine whose answer breaks off after two pieces (an upstream that dies mid-stream)."""

    async def stream(self, request: dict[str, Any]) -> AsyncIterator[dict[str, Any]]:
        count = 0
        async for piece in super().stream(request):
            yield piece
            count += 1
            if count == 2:
                # what OpenAICompatibleEngine raises when its upstream resets mid-answer
                raise EngineError("upstream http://127.0.0.1:1/v1 failed: Response payload is not completed")


async def test_an_engine_that_breaks_off_mid_stream_counts_as_a_failure_of_its_peer(
    start_worker: StartWorker, start_router: StartRouter, router_home: Path
) -> None:
    """README failure table: "the peer (or its engine) answers ... a body that breaks off" is a
    failure, "two in a row exclude it for 30 s". The same breakage on a plain request (worker
    502) is counted, and so is a worker process that dies mid-stream; but when the *engine*
    (an OpenAI-compatible upstream) breaks off, the worker ends its stream with an error event
    and [DONE], and the router records nothing, so a worker whose engine always dies mid-answer stays healthy and keeps getting
    every stream."""
    worker = await start_worker(_BreaksOffMidStream(first_token_delay=0, tokens_per_second=0))
    add_peer(router_home, worker, WORKER.pubkey, label="w1")
    router = await start_router()
    body = {"model": "demo-fast", "messages": [{"role": "user", "content": "hi"}], "stream": True}
    async with httpx.AsyncClient(base_url=router.url, timeout=20) as http:
        for _ in range(2):
            response = await http.post("/v1/chat/completions", json=body)
            assert response.status_code == 200 and '"error"' in response.text  # the stream failed
            assert response.text.rstrip().endswith("data: [DONE]")
        health = (await http.get("/peers")).json()[0]["health"]
    assert health["consecutiveFailures"] >= 2 and health["state"] == "excluded", health


@pytest.mark.parametrize(
    "path",
    ["/v1/chat/completions", "/v1/embeddings", "/v1/batches", "/api/chat", "/api/generate", "/api/embed", "/api/show"],
)
async def test_a_body_that_cannot_be_decoded_is_a_400_and_the_connection_stays_usable(
    start_worker: StartWorker, start_router: StartRouter, router_home: Path, path: str, caplog: pytest.LogCaptureFixture
) -> None:
    """A ``Content-Encoding: gzip`` (or ``br``) body that is not gzip is the client's mistake:
    a 400 in the route's error shape, not a 500 with a logged traceback; and the next
    request on the same keep-alive connection must not be reset."""
    add_peer(router_home, await start_worker(), WORKER.pubkey)
    router = await start_router()
    async with httpx.AsyncClient(base_url=router.url, timeout=20) as http:
        for encoding in ("gzip", "br"):
            refused = await http.post(path, content=b"not compressed at all",
                                      headers={"Content-Type": "application/json", "Content-Encoding": encoding})
            assert refused.status_code == 400, refused.text
            error = refused.json()["error"]
            message = error if path.startswith("/api/") else error["message"]
            assert "content-encoding" in message.lower() and encoding in message
            assert (await http.get("/v1/models")).status_code == 200
    # and the operator's log holds no traceback for the client's mistake
    assert not [r for r in caplog.records if r.exc_info or "Unhandled exception" in r.getMessage()]


@pytest.mark.parametrize(
    "content, content_type",
    [
        (b"--xyz\r\ngarbage", "multipart/form-data; boundary=xyz"),
        (b"garbage", "multipart/form-data"),
        (b"--xyz--\r\n", "multipart/form-data; boundary=xyz"),
    ],
    ids=["cut-off", "no-boundary", "no-parts"],
)
async def test_a_malformed_multipart_upload_is_a_400(start_router: StartRouter, content: bytes, content_type: str) -> None:
    """README "Cargo batches": a bad upload is a 400 with a reason; a multipart body that
    breaks off, or a multipart type without a boundary, was a 500 "internal server error"."""
    router = await start_router()
    async with httpx.AsyncClient(base_url=router.url, timeout=20) as http:
        refused = await http.post("/v1/files", content=content, headers={"Content-Type": content_type})
        assert refused.status_code == 400, refused.text
        assert refused.json()["error"]["type"] == "invalid_request"
        assert (await http.get("/v1/models")).status_code == 200
