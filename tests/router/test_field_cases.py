"""Situations that broke other OpenAI-compatible gateways (shared/field/cases), each through a
real worker and router on loopback, with the right status, body or stream asserted.

Each test names its field case; several pin the whole kind (more statuses, both engines, plain
and streamed) rather than the one input of the case.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiohttp import web

from lobstah_core.engines.demo import DemoEngine
from lobstah_core.engines.ollama import OllamaEngine
from lobstah_core.engines.openai_compat import OpenAICompatibleEngine
from lobstah_core.http import RunningServer
from lobstah_core.protocol import Identity, decode_receipt_header, verify_receipt
from lobstah_core.router import relay
from lobstah_core.router.peers import Peer, PeerStore
from lobstah_core.router.transport import AiohttpTransport, PeerUnreachable
from lobstah_core.timeouts import Timeouts

from ..conftest import WORKER, StartRouter, StartWorker, add_peer, ledgered
from ..engines.ollama_server import REFUSE_TOOLS, create_ollama_app
from .rogue_worker import create_rogue_app

M = "local-model"
HI = [{"role": "user", "content": "hi"}]
Chat = Callable[[web.Request, dict[str, Any]], Awaitable[web.StreamResponse]]


def sse(payload: Any) -> bytes:
    return b"data: " + (payload if isinstance(payload, bytes) else json.dumps(payload).encode()) + b"\n\n"


def chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
    return {"id": "c1", "object": "chat.completion.chunk", "created": 1, "model": M,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}


def completion(text: str, usage: bool = True) -> dict[str, Any]:
    body = {"id": "c1", "object": "chat.completion", "created": 1, "model": M,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}]}
    return {**body, "usage": {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5}} if usage else body


async def stream_of(request: web.Request, *events: bytes, pause: float = 0.0) -> web.StreamResponse:
    response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
    await response.prepare(request)
    for event in events:
        await response.write(event)
        await asyncio.sleep(pause)
    await response.write(b"data: [DONE]\n\n")
    return response


@pytest.fixture
async def upstream() -> AsyncIterator[Callable[..., Awaitable[str]]]:
    """Start a fake OpenAI-compatible server (``/v1/models``, ``/v1/chat/completions`` answered
    by ``chat``, optionally llama.cpp's ``/tokenize``); returns its ``/v1`` base URL."""
    servers: list[RunningServer] = []

    async def start(chat: Chat, tokenize: bool = False) -> str:
        async def models(request: web.Request) -> web.Response:
            return web.json_response({"object": "list", "data": [{"id": M, "object": "model"}]})

        async def completions(request: web.Request) -> web.StreamResponse:
            return await chat(request, await request.json())

        async def count(request: web.Request) -> web.Response:
            text = (await request.json())["content"]
            return web.json_response({"tokens": list(range(len(text.split())))})

        app = web.Application()
        app.router.add_get("/v1/models", models)
        app.router.add_post("/v1/chat/completions", completions)
        if tokenize:
            app.router.add_post("/tokenize", count)
        servers.append(server := await RunningServer(app, "127.0.0.1", 0, "upstream").start())
        return server.url + "/v1"

    yield start
    for server in servers:
        await server.stop()


@pytest.fixture
def through(start_worker: StartWorker, start_router: StartRouter, router_home: Path) -> Callable[..., Awaitable[str]]:
    """A worker over ``engine`` behind a router; returns the router's URL."""

    async def build(engine: Any, router_options: dict[str, Any] | None = None, **worker_options: Any) -> str:
        worker = await start_worker(engine, **worker_options)
        add_peer(router_home, worker, WORKER.pubkey, label="w1")
        return (await start_router(**(router_options or {}))).url

    return build


def events_of(text: str) -> list[Any]:
    return [json.loads(e[6:]) if e.startswith("data: {") else e[6:] for e in text.split("\n\n") if e.startswith("data: ")]


# 02: an upstream that reports no usage, plain or streamed
@pytest.mark.parametrize("tokenize", [False, True])
async def test_an_upstream_without_usage_still_answers_and_is_paid(upstream: Any, through: Any, router_home: Path, tokenize: bool) -> None:
    async def chat(request: web.Request, body: dict[str, Any]) -> web.StreamResponse:
        if not body.get("stream"):
            return web.json_response(completion("Hello there friend", usage=False))
        return await stream_of(request, sse(chunk({"role": "assistant", "content": ""})),
                               sse(chunk({"content": "Hello"})), sse(chunk({"content": " there"})), sse(chunk({}, "stop")))

    router = await through(OpenAICompatibleEngine(await upstream(chat, tokenize=tokenize)))
    prompt = [{"role": "user", "content": "say hello to me please"}]
    async with httpx.AsyncClient(base_url=router, timeout=20) as http:
        streamed = await http.post("/v1/chat/completions", json={"model": M, "messages": prompt, "stream": True,
                                                                 "stream_options": {"include_usage": True}})
        plain = await http.post("/v1/chat/completions", json={"model": M, "messages": prompt})
    events = events_of(streamed.text)
    assert not [e for e in events if isinstance(e, dict) and "error" in e]
    assert events[-1] == "[DONE]" and events[-2]["usage"]["completion_tokens"] == 2  # two pieces of text
    assert plain.status_code == 200 and plain.json()["usage"]["completion_tokens"] == (3 if tokenize else 5)
    receipts = sorted(await ledgered(router_home, 2), key=lambda r: r.receipt.output_tokens)
    # prompt: the upstream's tokenizer (5 words) when it has one, else ~4 characters a token
    assert {r.receipt.input_tokens for r in receipts} == ({5} if tokenize else {6})
    assert [r.receipt.output_tokens for r in receipts] == sorted([2, 3 if tokenize else 5])


# 03: one SSE event larger than any line buffer
async def test_a_600_kb_event_is_relayed_whole(upstream: Any, through: Any) -> None:
    arguments = json.dumps({"content": "x" * 600_000})
    call = {"index": 0, "id": "call_1", "type": "function", "function": {"name": "write_file", "arguments": arguments}}

    async def chat(request: web.Request, body: dict[str, Any]) -> web.StreamResponse:
        return await stream_of(request, sse(chunk({"role": "assistant", "content": None})),
                               sse(chunk({"tool_calls": [call]})), sse(chunk({}, "tool_calls")))

    router = await through(OpenAICompatibleEngine(await upstream(chat)))
    async with httpx.AsyncClient(base_url=router, timeout=20) as http:
        response = await http.post("/v1/chat/completions", json={"model": M, "messages": HI, "stream": True})
    events = events_of(response.text)
    got = [c for e in events if isinstance(e, dict) for ch in e.get("choices", []) for c in ch["delta"].get("tool_calls") or []]
    assert [c["function"]["arguments"] for c in got] == [arguments]
    assert events[-1] == "[DONE]"


# 06 (a): an upstream that rate-limits, plain and streamed
@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize(("code", "retry"), [(429, "7"), (503, "4")])
async def test_an_upstream_rate_limit_reaches_the_client_with_retry_after(upstream: Any, through: Any, stream: bool, code: int, retry: str) -> None:
    async def chat(request: web.Request, body: dict[str, Any]) -> web.Response:
        return web.json_response({"error": {"message": "slow down", "type": "rate_limit_error"}}, status=code,
                                 headers={"Retry-After": retry})

    router = await through(OpenAICompatibleEngine(await upstream(chat)))
    async with httpx.AsyncClient(base_url=router, timeout=20) as http:
        response = await http.post("/v1/chat/completions", json={"model": M, "messages": HI, "stream": stream})
        assert response.status_code == 429 and response.headers["Retry-After"] == retry
        peers = (await http.get("/peers")).json()
    assert peers[0]["health"]["state"] == "healthy" and peers[0]["health"]["consecutiveFailures"] == 0


# 06 (b): a worker with one slot and no queue, under a burst
async def test_a_full_worker_answers_429_and_stays_in_rotation(through: Any) -> None:
    router = await through(DemoEngine(first_token_delay=0.5), concurrency=1, max_queue=0)
    async with httpx.AsyncClient(base_url=router, timeout=20) as http:
        burst = await asyncio.gather(*[http.post("/v1/chat/completions", json={"model": "demo-fast", "messages": HI}) for _ in range(3)])
        refused = [r for r in burst if r.status_code != 200]
        assert sorted(r.status_code for r in burst) == [200, 429, 429]
        assert all(int(r.headers["Retry-After"]) >= 1 and r.json()["error"]["type"] == "rate_limited" for r in refused)
        after = await http.post("/v1/chat/completions", json={"model": "demo-fast", "messages": HI})
    assert after.status_code == 200


# 08: a long, steady stream is never cut by a timeout
async def test_a_steady_stream_outlives_every_timeout(upstream: Any, through: Any) -> None:
    async def chat(request: web.Request, body: dict[str, Any]) -> web.StreamResponse:
        tokens = [sse(chunk({"content": f" t{i}"})) for i in range(12)]
        usage = sse({**chunk({}), "choices": [], "usage": {"prompt_tokens": 1, "completion_tokens": 12}})
        return await stream_of(request, sse(chunk({"role": "assistant"})), *tokens, sse(chunk({}, "stop")), usage, pause=0.1)

    # Every limit is 0.5 s, the stream takes 1.5 s.
    engine = OpenAICompatibleEngine(await upstream(chat), timeout=0.5)
    router = await through(engine, {"first_byte_timeout": 0.5, "idle_timeout": 0.5})
    async with httpx.AsyncClient(base_url=router, timeout=20) as http:
        response = await http.post("/v1/chat/completions", json={"model": M, "messages": HI, "stream": True})
    events = events_of(response.text)
    assert sum(1 for e in events if isinstance(e, dict) and " t" in str(e)) == 12 and events[-1] == "[DONE]"


# 09: Ollama refuses the request itself: a 400 for the client, nobody excluded
async def test_an_ollama_refusal_is_a_400_and_excludes_nobody(through: Any) -> None:
    ollama_app = create_ollama_app()
    ollama_app[REFUSE_TOOLS] = True
    ollama = await RunningServer(ollama_app, "127.0.0.1", 0, "ollama").start()
    try:
        router = await through(OllamaEngine(ollama.url))
        tools = [{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}]
        bad = {"model": "llama3.2:3b", "messages": HI, "tools": tools}
        async with httpx.AsyncClient(base_url=router, timeout=20) as http:
            for body in ({**bad, "stream": True}, bad, bad):
                response = await http.post("/v1/chat/completions", json=body)
                assert response.status_code == 400, response.text
                assert "does not support tools" in response.json()["error"]["message"]
            good = await http.post("/v1/chat/completions", json={"model": "llama3.2:3b", "messages": HI})
            assert good.status_code == 200
    finally:
        await ollama.stop()


# the same kind: a malformed content part, twice, must not exclude anybody either
async def test_a_malformed_content_part_is_a_400_at_router_and_worker(start_worker: StartWorker, through: Any) -> None:
    router = await through(DemoEngine())
    worker = start_worker.servers[0]  # type: ignore[attr-defined]
    body = {"model": "demo-fast", "messages": [{"role": "user", "content": [{"type": "text", "text": 5}]}]}
    async with httpx.AsyncClient(timeout=20) as http:
        for url in (router, router, worker.url):
            response = await http.post(url + "/v1/chat/completions", json=body)
            assert response.status_code == 400 and "text" in response.json()["error"]["message"]
        for part in ({"type": "image_url", "image_url": 3}, {"type": "hologram"}, {"text": "no type"}):
            message = {"role": "user", "content": [part]}
            response = await http.post(router + "/v1/chat/completions", json={**body, "messages": [message]})
            assert response.status_code == 400
        fine = [{"type": "text", "text": "hi"}, {"type": "image_url", "image_url": {"url": "data:image/png;base64,AA=="}}]
        ok = await http.post(router + "/v1/chat/completions", json={**body, "messages": [{"role": "user", "content": fine}]})
    assert ok.status_code == 200


# 11: the model list's shape, and one model by id (ids with "/" and ":")
async def test_models_are_openai_model_objects(through: Any) -> None:
    router = await through(DemoEngine(models=("demo-fast", "library/qwen2.5:7b")))
    async with httpx.AsyncClient(base_url=router, timeout=20) as http:
        listing = (await http.get("/v1/models")).json()
        one = await http.get("/v1/models/library/qwen2.5:7b")
        missing = await http.get("/v1/models/gpt-4o")
    assert listing["object"] == "list"
    for card in listing["data"]:
        assert set(card) == {"id", "object", "created", "owned_by"} and isinstance(card["created"], int)
    assert one.status_code == 200 and one.json()["id"] == "library/qwen2.5:7b"
    assert missing.status_code == 404 and missing.json()["error"]["type"] == "model_not_found"


# 13: browsers' CORS preflight
async def test_cors_for_loopback_pages_and_configured_origins(through: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LOBSTAH_ORIGINS", "https://chat.example.org")
    router = await through(DemoEngine(), {"cors_origins": ["https://app.example.com"]})
    preflight = {"Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "authorization,content-type"}
    async with httpx.AsyncClient(base_url=router, timeout=20) as http:
        for origin in ("http://localhost:5173", "http://127.0.0.1:3000", "https://app.example.com", "https://chat.example.org"):
            answer = await http.options("/v1/chat/completions", headers={"Origin": origin, **preflight})
            assert answer.status_code == 204 and answer.headers["access-control-allow-origin"] == origin
            assert "POST" in answer.headers["access-control-allow-methods"]
            assert answer.headers["access-control-allow-headers"] == "authorization,content-type"
            listing = await http.get("/v1/models", headers={"Origin": origin})
            assert listing.headers["access-control-allow-origin"] == origin
        async with http.stream("POST", "/v1/chat/completions", headers={"Origin": "http://localhost:5173"},
                               json={"model": "demo-fast", "messages": HI, "stream": True}) as streamed:
            assert streamed.headers["access-control-allow-origin"] == "http://localhost:5173"
        for stranger in ("https://evil.example", "http://localhost.evil.example", "http://localhost:99x"):
            answer = await http.options("/v1/chat/completions", headers={"Origin": stranger, **preflight})
            assert "access-control-allow-origin" not in answer.headers
            listing = await http.get("/v1/models", headers={"Origin": stranger})
            assert "access-control-allow-origin" not in listing.headers


# 17: several choices are served or refused, never silently one
async def test_n_above_one_is_refused_by_an_engine_that_gives_one_choice(through: Any) -> None:
    router = await through(DemoEngine())
    async with httpx.AsyncClient(base_url=router, timeout=20) as http:
        three = await http.post("/v1/chat/completions", json={"model": "demo-fast", "messages": HI, "n": 3})
        one = await http.post("/v1/chat/completions", json={"model": "demo-fast", "messages": HI, "n": 1})
        zero = await http.post("/v1/chat/completions", json={"model": "demo-fast", "messages": HI, "n": 0})
    assert three.status_code == 400 and "n=3" in three.json()["error"]["message"]
    assert one.status_code == 200 and zero.status_code == 400


# 21: explicit nulls for optional fields mean "not set"; bad token limits are a 400
async def test_nulls_mean_unset_and_bad_limits_are_refused(through: Any) -> None:
    router = await through(DemoEngine(first_token_delay=0, tokens_per_second=0))
    nulls = {"stream": None, "stream_options": None, "n": None, "temperature": None, "max_tokens": None, "stop": None}
    async with httpx.AsyncClient(base_url=router, timeout=20) as http:
        answer = await http.post("/v1/chat/completions", json={"model": "demo-fast", "messages": HI, **nulls})
        assert answer.status_code == 200 and answer.json()["object"] == "chat.completion"
        for limit in (0, -1, 1.5, "10", 10**12):
            refused = await http.post("/v1/chat/completions", json={"model": "demo-fast", "messages": HI, "max_tokens": limit})
            assert refused.status_code == 400, limit
        for raw in (b'{"model":"demo-fast","messages":[{"role":"user","content":"hi"}],"max_tokens":NaN}',
                    b'{"model":"demo-fast","messages":[{"role":"user","content":"hi"}],"max_tokens":Infinity}'):
            refused = await http.post("/v1/chat/completions", content=raw, headers={"Content-Type": "application/json"})
            assert refused.status_code == 400


async def test_an_oversized_header_gets_the_json_error_shape(through: Any) -> None:
    router = await through(DemoEngine())
    async with httpx.AsyncClient(base_url=router, timeout=20) as http:
        answer = await http.get("/v1/models", headers={"X-Big": "a" * 65_536})
    assert answer.status_code == 431
    assert answer.json()["error"]["type"] == "request_header_too_large"


async def test_a_stopped_worker_is_failed_over_and_excluded(start_worker: StartWorker, start_router: StartRouter, router_home: Path, tmp_path: Path) -> None:
    """A worker process stopped with SIGSTOP: the kernel still accepts its connections, nothing
    answers. Requests fail over after the first-byte timeout, and it is excluded."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    home = tmp_path / "stopped-home"
    process = subprocess.Popen(
        [sys.executable, "-m", "lobstah_core", "worker", "start", "--engine", "demo", "--port", str(port),
         "--tier", "interactive", "--label", "stopped"],
        env={**os.environ, "LOBSTAH_HOME": str(home)}, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )
    try:
        async with httpx.AsyncClient(timeout=20) as http:
            stopped_key = None
            for _ in range(600):  # the process starting up (bounded: 60 s on a loaded machine)
                with contextlib.suppress(httpx.HTTPError):
                    stopped_key = (await http.get(f"http://127.0.0.1:{port}/pubkey")).json()["pubkey"]
                    break
                await asyncio.sleep(0.1)
            assert stopped_key is not None, "the worker process did not start"
            PeerStore(router_home / "peers.json").add(Peer(pubkey=stopped_key, url=f"http://127.0.0.1:{port}", label="stopped"))
            add_peer(router_home, await start_worker(identity=WORKER), WORKER.pubkey, label="good")
            router = await start_router(first_byte_timeout=0.5, idle_timeout=0.5, probe_timeout=0.3)
            process.send_signal(signal.SIGSTOP)
            streamed = {"model": "demo-fast", "messages": HI, "stream": True}  # the interactive peer first
            answers = [await http.post(router.url + "/v1/chat/completions", json=streamed) for _ in range(3)]
            health = {p["label"]: p["health"] for p in (await http.get(router.url + "/peers")).json()}
        assert [a.status_code for a in answers] == [200, 200, 200]
        assert all(events_of(a.text)[-1] == "[DONE]" for a in answers)
        assert health["stopped"]["state"] == "excluded" and "first byte" in health["stopped"]["lastError"]
        assert health["stopped"]["inFlight"] == 0 and health["good"]["state"] == "healthy"
    finally:
        process.send_signal(signal.SIGCONT)
        process.terminate()
        process.wait(10)


async def test_a_hung_peer_is_failed_over_after_the_first_byte_timeout() -> None:
    """The wire-level half: no status line within first_byte_s is PeerUnreachable."""
    silent = socket.create_server(("127.0.0.1", 0))
    transport = AiohttpTransport(Timeouts(connect_s=1, first_byte_s=0.3, idle_s=0.3))
    peer = Peer(pubkey=Identity.from_seed(b"S" * 32).pubkey, url=f"http://127.0.0.1:{silent.getsockname()[1]}")
    try:
        with pytest.raises(PeerUnreachable, match="first byte"):
            await transport.request(peer, "POST", "/v1/chat/completions", b"{}")
    finally:
        await transport.aclose()
        silent.close()


async def test_idle_connections_are_closed() -> None:
    server = await RunningServer(web.Application(), "127.0.0.1", 0, "test", idle_connection_s=0.3).start()
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        writer.write(b"GET / HTTP/1.1\r\nHost: x\r\n")  # headers begun, never finished
        assert await asyncio.wait_for(reader.read(), 5) == b""  # closed by the server
        writer.close()
    finally:
        await server.stop()


async def test_keepalive_comments_while_the_first_token_is_pending(through: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(relay, "KEEPALIVE_S", 0.1)
    router = await through(DemoEngine(first_token_delay=0.45))
    async with httpx.AsyncClient(base_url=router, timeout=20) as http:
        response = await http.post("/v1/chat/completions", json={"model": "demo-fast", "messages": HI, "stream": True})
    assert response.text.count(": keep-alive\n\n") >= 2
    assert events_of(response.text)[-1] == "[DONE]"


async def test_headers_go_out_while_a_peer_is_slow_to_its_first_event(
    start_router: StartRouter, router_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The 200 and headers wait for the first event (one packet) only HEADERS_WAIT_S: a client
    # learns its stream was taken long before a slow first event comes.
    monkeypatch.setattr(relay, "HEADERS_WAIT_S", 0.1)
    peer = await RunningServer(create_rogue_app(WORKER, "slow_first_event"), "127.0.0.1", 0, "rogue").start()
    try:
        add_peer(router_home, peer, WORKER.pubkey)
        router = await start_router()
        async with httpx.AsyncClient(base_url=router.url, timeout=20) as http:
            request = {"model": "demo-fast", "messages": HI, "stream": True}
            async with http.stream("POST", "/v1/chat/completions", json=request) as response:
                # entered once the headers are in: well before the event (3 s)
                assert response.status_code == 200
                assert response.headers["content-type"].startswith("text/event-stream")
                body = asyncio.create_task(response.aread())
                await asyncio.sleep(0.5)
                assert not body.done()  # the event is still to come: the headers came alone
                text = (await body).decode()
        assert events_of(text)[0]["choices"][0]["delta"]["content"] == "late"
        assert events_of(text)[-1] == "[DONE]"
    finally:
        await peer.stop()


class _FailsMidStream(DemoEngine):
    async def stream(self, request: dict[str, Any]) -> AsyncIterator[dict[str, Any]]:
        count = 0
        async for piece in super().stream(request):
            yield piece
            count += 1
            if count == 3:
                raise ValueError("a bug in an engine")


async def test_an_engine_crash_mid_stream_is_one_error_event_not_a_second_response(through: Any) -> None:
    router = await through(_FailsMidStream(first_token_delay=0, tokens_per_second=0))
    async with httpx.AsyncClient(base_url=router, timeout=20) as http:
        response = await http.post("/v1/chat/completions", json={"model": "demo-fast", "messages": HI, "stream": True})
    assert response.status_code == 200 and "HTTP/1.1" not in response.text
    events = events_of(response.text)
    errors = [e for e in events if isinstance(e, dict) and "error" in e]
    assert len(errors) == 1 and events[-1] == "[DONE]"


async def test_receipts_match_what_the_client_saw_without_upstream_usage(upstream: Any, start_worker: StartWorker) -> None:
    """The worker side of case 02: its signed receipt counts the streamed pieces."""
    async def chat(request: web.Request, body: dict[str, Any]) -> web.StreamResponse:
        return await stream_of(request, sse(chunk({"role": "assistant", "content": ""})),
                               *[sse(chunk({"content": w})) for w in ("a", " b", " c")], sse(chunk({}, "stop")))

    worker = await start_worker(OpenAICompatibleEngine(await upstream(chat)))
    async with httpx.AsyncClient(base_url=worker.url, timeout=20) as http:
        text = (await http.post("/v1/chat/completions", json={"model": M, "messages": HI, "stream": True})).text
    comment = next(e for e in text.split("\n\n") if e.startswith(":lobstah-receipt:"))
    receipt = verify_receipt(decode_receipt_header(comment.removeprefix(":lobstah-receipt:"))).receipt
    assert receipt.output_tokens == 3 and receipt.input_tokens == 1


# 20: a client's keep-alive connection survives an idle gap shorter than the server's limit
async def test_a_kept_alive_connection_serves_after_an_idle_gap(through: Any) -> None:
    router = await through(DemoEngine(first_token_delay=0, tokens_per_second=0))
    host, port = router.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    try:
        for gap in (0.0, 1.5):
            await asyncio.sleep(gap)
            writer.write(f"GET /v1/models HTTP/1.1\r\nHost: {host}\r\n\r\n".encode())
            await writer.drain()
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
            assert head.startswith(b"HTTP/1.1 200")
            length = int(next(line for line in head.split(b"\r\n") if line.lower().startswith(b"content-length")).split(b":")[1])
            assert json.loads(await reader.readexactly(length))["object"] == "list"
    finally:
        writer.close()


# 05: a client that hangs up mid-stream frees everything on the way
async def test_a_client_hanging_up_mid_stream_frees_the_slot_and_in_flight(through: Any, start_worker: StartWorker) -> None:
    router = await through(DemoEngine(first_token_delay=0, tokens_per_second=5), concurrency=1, max_queue=0)
    worker = start_worker.servers[0]  # type: ignore[attr-defined]
    async with httpx.AsyncClient(base_url=router, timeout=20) as http:
        async with http.stream("POST", "/v1/chat/completions", json={"model": "demo-fast", "messages": HI, "stream": True}) as streamed:
            async for line in streamed.aiter_lines():
                if '"content":"' in line and '"content":""' not in line:
                    break  # the first token: hang up
        for _ in range(250):  # bounded: 5 s
            peers = (await http.get("/peers")).json()
            capacity = (await http.get(worker.url + "/capacity")).json()
            if peers[0]["health"]["inFlight"] == 0 and capacity["queueDepth"] == 0:
                break
            await asyncio.sleep(0.02)
        assert peers[0]["health"]["inFlight"] == 0 and capacity["queueDepth"] == 0
        assert peers[0]["health"]["consecutiveFailures"] == 0  # the client leaving is nobody's fault
        after = await http.post("/v1/chat/completions", json={"model": "demo-fast", "messages": HI, "max_tokens": 2})
    assert after.status_code == 200


def receipt_stripping_front(worker_url: str) -> web.Application:
    """A pass-through to a worker that loses every receipt on the way (header and comment), as
    a crash between the worker's answer and the router's ledger would."""

    async def forward(request: web.Request) -> web.StreamResponse:
        headers = {k: v for k, v in request.headers.items() if k.lower().startswith(("content-type", "x-lobstah-"))}
        async with aiohttp_session() as session, session.request(
            request.method, worker_url + request.path_qs, data=await request.read(), headers=headers
        ) as upstream_answer:
            kept = {k: v for k, v in upstream_answer.headers.items()
                    if k.lower() == "content-type" or (k.lower().startswith("x-lobstah-") and "receipt" not in k.lower())}
            response = web.StreamResponse(status=upstream_answer.status, headers=kept)
            await response.prepare(request)
            body = await upstream_answer.read()
            events = [e for e in body.split(b"\n\n") if not e.startswith(b":lobstah-receipt:")]
            await response.write(b"\n\n".join(events))
            return response

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", forward)
    return app


def aiohttp_session() -> Any:
    import aiohttp

    return aiohttp.ClientSession()


@pytest.mark.parametrize("stream", [True, False])
async def test_a_receipt_lost_on_the_way_is_recovered_by_reconciliation(
    start_worker: StartWorker, start_router: StartRouter, router_home: Path, monkeypatch: pytest.MonkeyPatch, stream: bool
) -> None:
    from lobstah_core.router import reconcile

    monkeypatch.setattr(reconcile, "RECOVER_DELAY_S", 0.05)
    worker = await start_worker(DemoEngine(first_token_delay=0, tokens_per_second=0))
    front = await RunningServer(receipt_stripping_front(worker.url), "127.0.0.1", 0, "front").start()
    try:
        add_peer(router_home, front, WORKER.pubkey, label="w1")
        router = await start_router()
        async with httpx.AsyncClient(base_url=router.url, timeout=20) as http:
            answer = await http.post("/v1/chat/completions", json={"model": "demo-fast", "messages": HI, "stream": stream})
        assert answer.status_code == 200
        recovered = await ledgered(router_home, 1)
        assert len(recovered) == 1 and recovered[0].receipt.worker_pubkey == WORKER.pubkey
    finally:
        await front.stop()
