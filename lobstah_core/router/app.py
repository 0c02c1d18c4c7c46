"""The router's aiohttp app: the grid as an OpenAI provider (WIRE.md "Router HTTP")."""

from __future__ import annotations

import asyncio
import hmac
import json
import os
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

from aiohttp import web

from ..clock import wall_clock_ms
from ..config import RouterSettings
from ..errors import Unauthorized
from ..events import EventBus, event_to_json
from ..errors import ModelNotFound
from ..http import MAX_BODY, error_middleware, install_cors, json_response, parse_body, read_body
from ..ledger import Ledger
from ..metrics import metrics_response
from ..protocol.identity import Identity
from ..protocol.schemas import ChatCompletionRequest, EmbeddingRequest, JobRequest, ModelList
from ..protocol.url_safety import UrlPolicy
from ..tasks import cancel_and_wait
from .directory import PeerDirectory
from .health import HealthBook
from .job_map import JobMap
from .jobs import RouterJobs
from .metrics import RouterMetrics
from .peers import PeerStore
from .dashboard import dashboard, ledger
from .dispatch import Call, Dispatcher
from .receipts import ReceiptDesk
from .reconcile import Reconciler
from .relay import relay_plain, relay_stream
from .ollama_api import add_ollama_routes
from .state import CHAT_PATH, EMBEDDINGS_PATH, ROUTER, Router, model_cards
from .transport import AiohttpTransport, PeerTransport
from .url_guard import PeerUrlGuard

__all__ = ["create_app", "Router", "ROUTER"]

#: A comment on /events this often keeps proxies from closing an idle stream.
HEARTBEAT_S = 15.0


def create_app(
    settings: RouterSettings,
    identity: Identity,
    home: Path,
    *,
    bus: EventBus | None = None,
    transport: PeerTransport | None = None,
    clock_ms: Callable[[], int] = wall_clock_ms,
) -> web.Application:
    """A router app over the peers in ``home/peers.json`` and the ledger in ``home``.

    The app owns the ledger, the transport and the background capacity refresh (cleanup context).
    """
    app = web.Application(
        client_max_size=settings.max_body_bytes,
        middlewares=[error_middleware, *_api_key_middlewares(settings.api_key)],
    )
    app[MAX_BODY] = settings.max_body_bytes
    install_cors(app, settings.all_cors_origins())
    events = bus or EventBus()

    metrics = RouterMetrics()

    async def counting(app: web.Application) -> AsyncIterator[None]:
        with events.tap(metrics.record):
            yield

    async def lifecycle(app: web.Application) -> AsyncIterator[None]:
        peer_transport = transport or AiohttpTransport(settings.timeouts())
        ledger = Ledger(home / "ledger.sqlite3")
        health = HealthBook(events, clock_ms, exclusion_ms=int(settings.exclusion_seconds * 1000))
        directory = PeerDirectory(
            PeerStore(home / "peers.json"), health, peer_transport, events, clock_ms,
            interval=settings.capacity_interval, probe_timeout=settings.probe_timeout,
        )
        directory.reload()
        metrics.directory = directory  # before the first probes: their failures count by name
        await directory.refresh()
        desk = ReceiptDesk(identity.pubkey, ledger, events, clock_ms)
        url_policy = UrlPolicy.from_env(os.environ)
        reconciler = Reconciler(identity, directory, peer_transport, desk, ledger, events, clock_ms,
                                url_guard=PeerUrlGuard(url_policy), interval=settings.reconcile_interval)
        await reconciler.start()
        dispatcher = Dispatcher(
            identity, directory, peer_transport, clock_ms, settings.timeouts(), url_policy,
            on_call=metrics.observe_call,
        )
        job_map = JobMap(home / "router-jobs.sqlite3")
        jobs = RouterJobs(identity, dispatcher, peer_transport, desk, job_map, clock_ms)
        app[ROUTER] = Router(
            identity, settings, events, ledger, directory, desk, reconciler, dispatcher, jobs, clock_ms, metrics
        )
        background = asyncio.create_task(directory.run())
        reconciling = asyncio.create_task(reconciler.run())
        yield
        await cancel_and_wait(reconciling)
        await cancel_and_wait(background)
        await directory.close()
        await desk.drain()
        await peer_transport.aclose()
        job_map.close()
        ledger.close()

    app.cleanup_ctx.append(counting)
    app.cleanup_ctx.append(lifecycle)
    app.router.add_get("/", index)
    app.router.add_get("/pubkey", pubkey)
    app.router.add_get("/peers", peers)
    app.router.add_get("/balance", balance)
    app.router.add_get("/events", events_stream)
    app.router.add_get("/metrics", metrics_text)
    app.router.add_get("/ledger", ledger)
    app.router.add_get("/dashboard", dashboard)
    app.router.add_get("/v1/models", models)
    app.router.add_get("/v1/models/{model_id:.+}", model)
    app.router.add_post("/v1/chat/completions", chat_completions)
    app.router.add_post(EMBEDDINGS_PATH, embeddings)
    app.router.add_post("/v1/jobs", create_job)
    app.router.add_get("/v1/jobs/{job_id}", get_job)
    app.router.add_delete("/v1/jobs/{job_id}", cancel_job)
    add_ollama_routes(app)
    from .batch_api import install_batches  # it reads this module's ROUTER

    install_batches(app, home)
    return app


#: What anyone may ask a router that has an API key: that it is one, its public key, and the
#: dashboard page (static, no data in it: a browser's navigation cannot send the key, which the
#: page reads from its URL fragment and sends with every request for data).
OPEN_PATHS = frozenset({"/", "/pubkey", "/dashboard"})


def _api_key_middlewares(api_key: str | None) -> list[Any]:
    """The middleware that demands ``api_key`` on every route but :data:`OPEN_PATHS`; none
    when any key is accepted. CORS preflights are answered before it (browsers send them
    without credentials)."""
    if api_key is None:
        return []

    @web.middleware
    async def check_api_key(request: web.Request, handler: Any) -> web.StreamResponse:
        if request.path not in OPEN_PATHS:
            given = request.headers.get("Authorization", "").removeprefix("Bearer ").strip()
            # aiohttp hands header bytes that are not UTF-8 over as surrogates: compare the bytes.
            if not hmac.compare_digest(given.encode("utf-8", "surrogateescape"), api_key.encode()):
                raise Unauthorized("this router needs an API key: Authorization: Bearer <key>")
        return await handler(request)

    return [check_api_key]


async def index(request: web.Request) -> web.Response:
    return web.Response(text="lobstah-router")


async def pubkey(request: web.Request) -> web.Response:
    return web.json_response({"pubkey": request.app[ROUTER].identity.pubkey})


async def peers(request: web.Request) -> web.Response:
    """The peer list, each entry with its live health (an extension JS clients ignore)."""
    return web.json_response([view.to_wire() for view in request.app[ROUTER].directory.views()])


async def balance(request: web.Request) -> web.Response:
    router = request.app[ROUTER]
    summary = await asyncio.to_thread(router.ledger.summary, router.identity.pubkey)
    return json_response(summary)


async def metrics_text(request: web.Request) -> web.Response:
    """``GET /metrics``: Prometheus's text format (router/metrics.py lists the metrics)."""
    router = request.app[ROUTER]
    balance = await asyncio.to_thread(router.ledger.balance, router.identity.pubkey)
    router.metrics.read_state(router.directory, router.clock_ms(), balance)
    return metrics_response(router.metrics.registry)


async def events_stream(request: web.Request) -> web.StreamResponse:
    """Server-sent events: one ``event: <kind>`` / ``data: <json>`` per thing that happens."""
    bus = request.app[ROUTER].bus
    response = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"})
    await response.prepare(request)
    await response.write(b": lobstah router events\n\n")
    async with bus.subscribe() as queue:
        while True:
            try:
                event = await asyncio.wait_for(queue.get(), HEARTBEAT_S)
            except asyncio.TimeoutError:
                await response.write(b": keep-alive\n\n")
                continue
            payload = json.dumps(event_to_json(event), separators=(",", ":"))
            await response.write(f"event: {event.kind}\ndata: {payload}\n\n".encode())


async def models(request: web.Request) -> web.Response:
    """``GET /v1/models``: every peer's models, deduplicated by id (OpenAI's Model objects)."""
    cards = await model_cards(request.app[ROUTER])
    return json_response(ModelList(data=list(cards.values())))


async def model(request: web.Request) -> web.Response:
    """``GET /v1/models/{id}`` (ids may hold ``/`` and ``:``); 404 ``model_not_found``."""
    model_id = request.match_info["model_id"]
    card = (await model_cards(request.app[ROUTER])).get(model_id)
    if card is None:
        raise ModelNotFound(f"no peer of this grid serves model {model_id!r}", model=model_id)
    return json_response(card)


async def chat_completions(request: web.Request) -> web.StreamResponse:
    router = request.app[ROUTER]
    raw = await read_body(request)
    chat = parse_body(raw, ChatCompletionRequest)
    # The client's bytes go to the worker unchanged: every field we do not know passes through.
    if chat.stream:
        call = Call(CHAT_PATH, raw, chat.model, "interactive")
        return await relay_stream(request, router.dispatcher, router.settlement, call)
    return await relay_plain(router.dispatcher, router.settlement, Call(CHAT_PATH, raw, chat.model))


async def embeddings(request: web.Request) -> web.Response:
    """``POST /v1/embeddings``: the client's body to a peer unchanged, through the dispatch
    core (failover, blame), the receipt to the desk."""
    router = request.app[ROUTER]
    raw = await read_body(request)
    embedding = parse_body(raw, EmbeddingRequest)
    return await relay_plain(router.dispatcher, router.settlement, Call(EMBEDDINGS_PATH, raw, embedding.model))


async def create_job(request: web.Request) -> web.Response:
    raw = await read_body(request)
    job = parse_body(raw, JobRequest)
    return await request.app[ROUTER].jobs.submit(raw, job.model)


async def get_job(request: web.Request) -> web.Response:
    return await request.app[ROUTER].jobs.poll(request.match_info["job_id"])


async def cancel_job(request: web.Request) -> web.Response:
    return await request.app[ROUTER].jobs.cancel(request.match_info["job_id"])
