"""The worker's aiohttp app: every endpoint of WIRE.md "Worker HTTP"."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import TypeVar

from aiohttp import web

from ..clock import wall_clock_ms
from ..config import WorkerSettings
from ..engines.base import WorkerEngine
from ..errors import ModelNotFound, NotCancellable, NotFound, Overloaded, RequestError
from ..events import EventBus
from ..http import MAX_BODY, error_middleware, json_response, parse_body, read_body
from ..ledger import Ledger
from ..metrics import metrics_response
from ..protocol.identity import Identity
from ..protocol.reconciliation import RECEIPTS_PATH, ReceiptsQuery, next_since
from ..protocol.schemas import (
    ChatCompletionRequest,
    EmbeddingRequest,
    JobAccepted,
    JobRequest,
    ModelCard,
    ModelList,
)
from ..protocol.wire import parse_model
from .chat import plain_completion, streamed_completion
from .embeddings import embed
from .job_store import JobStore
from .jobs import JobRunner
from .metrics import WorkerMetrics
from .service import WorkerService

__all__ = ["create_app", "SERVICE", "JOBS", "METRICS"]

C = TypeVar("C", bound=ChatCompletionRequest | EmbeddingRequest)
SERVICE = web.AppKey("service", WorkerService)
JOBS = web.AppKey("jobs", JobRunner)
METRICS = web.AppKey("metrics", WorkerMetrics)


def create_app(
    settings: WorkerSettings,
    identity: Identity,
    engine: WorkerEngine,
    home: Path,
    *,
    clock_ms: Callable[[], int] = wall_clock_ms,
    bus: EventBus | None = None,
) -> web.Application:
    """A worker app. Its ledger and job queue live in ``home``; the app owns and closes them,
    and the engine, in its cleanup context.

    Run it with ``handler_cancellation=True`` on the runner, so that a client that hangs up
    cancels its engine call.
    """
    metrics = WorkerMetrics()
    app = web.Application(client_max_size=settings.max_body_bytes, middlewares=[metrics.middleware, error_middleware])
    app[MAX_BODY] = settings.max_body_bytes
    app[METRICS] = metrics
    events = bus or EventBus()

    async def counting(app: web.Application) -> AsyncIterator[None]:
        with events.tap(metrics.record):
            yield

    async def lifecycle(app: web.Application) -> AsyncIterator[None]:
        ledger = Ledger(home / "ledger.sqlite3")
        store = JobStore(home / "jobs.sqlite3", settings.job_ttl_seconds)
        service = WorkerService(identity, engine, ledger, settings, clock_ms, events)
        runner = JobRunner(service, store)
        await runner.start()
        app[SERVICE], app[JOBS] = service, runner
        yield
        await runner.stop()
        await service.issued.drain()
        await engine.aclose()
        store.close()
        ledger.close()

    app.cleanup_ctx.append(counting)
    app.cleanup_ctx.append(lifecycle)
    app.router.add_get("/", index)
    app.router.add_get("/pubkey", pubkey)
    app.router.add_get("/capacity", capacity)
    app.router.add_get("/metrics", metrics_text)
    app.router.add_get("/v1/models", models)
    app.router.add_get("/v1/models/{model_id:.+}", model)
    app.router.add_post("/v1/chat/completions", chat_completions)
    app.router.add_post("/v1/embeddings", embeddings)
    app.router.add_post("/v1/jobs", create_job)
    app.router.add_get("/v1/jobs/{job_id}", get_job)
    app.router.add_delete("/v1/jobs/{job_id}", cancel_job)
    app.router.add_get(RECEIPTS_PATH, receipts)
    return app


async def index(request: web.Request) -> web.Response:
    return web.Response(text="lobstah-worker")


async def pubkey(request: web.Request) -> web.Response:
    return web.json_response({"pubkey": request.app[SERVICE].identity.pubkey})


async def capacity(request: web.Request) -> web.Response:
    service, jobs = request.app[SERVICE], request.app[JOBS]
    counts = await asyncio.to_thread(jobs.store.counts)
    return json_response(await service.capacity(counts))


async def metrics_text(request: web.Request) -> web.Response:
    """``GET /metrics``: Prometheus's text format (worker/metrics.py lists the metrics)."""
    service, metrics = request.app[SERVICE], request.app[METRICS]
    balance = await asyncio.to_thread(service.ledger.balance, service.identity.pubkey)
    metrics.read_state(service.admission.queue_depth, balance)
    return metrics_response(metrics.registry)


async def _model_cards(service: WorkerService) -> list[ModelCard]:
    owner = f"lobstah:{service.identity.pubkey[:12]}"
    created = service.started_at_ms // 1000
    return [ModelCard(id=model, created=created, owned_by=owner) for model in await service.models()]


async def models(request: web.Request) -> web.Response:
    """``GET /v1/models``: OpenAI Model objects (``created``: when this worker started)."""
    return json_response(ModelList(data=await _model_cards(request.app[SERVICE])))


async def model(request: web.Request) -> web.Response:
    """``GET /v1/models/{id}`` (ids may hold ``/`` and ``:``); 404 ``model_not_found``."""
    model_id = request.match_info["model_id"]
    for card in await _model_cards(request.app[SERVICE]):
        if card.id == model_id:
            return json_response(card)
    raise ModelNotFound(f"model {model_id!r} is not served here", model=model_id)


async def chat_completions(request: web.Request) -> web.StreamResponse:
    service = request.app[SERVICE]
    chat, requester = await _admit(request, ChatCompletionRequest)
    if chat.stream:
        return await streamed_completion(service, request, chat, requester)
    return await plain_completion(service, request, chat, requester)


async def embeddings(request: web.Request) -> web.Response:
    """``POST /v1/embeddings`` (worker/embeddings.py)."""
    body, requester = await _admit(request, EmbeddingRequest)
    return await embed(request.app[SERVICE], request, body, requester)


async def create_job(request: web.Request) -> web.Response:
    service, jobs = request.app[SERVICE], request.app[JOBS]
    job, requester = await _admit(request, JobRequest)
    counts = await asyncio.to_thread(jobs.store.counts)
    if counts.queued >= service.settings.max_jobs:
        raise Overloaded(f"job queue is full ({counts.queued} queued)", retry_after=30)
    body = job.to_body()
    metadata = body.pop("metadata", None)
    record = await asyncio.to_thread(
        jobs.store.create, requester, body, metadata, service.clock_ms()
    )
    jobs.notify()
    accepted = JobAccepted(job_id=record.job_id, status="queued", created_at=record.created_at)
    return json_response(accepted, status=202)


async def get_job(request: web.Request) -> web.Response:
    service, jobs = request.app[SERVICE], request.app[JOBS]
    job_id = request.match_info["job_id"]
    record = await asyncio.to_thread(jobs.store.get, job_id, service.clock_ms())
    if record is None:
        raise NotFound(f"no job {job_id!r} (unknown, cancelled or expired)")
    return json_response(record)


async def cancel_job(request: web.Request) -> web.Response:
    jobs = request.app[JOBS]
    job_id = request.match_info["job_id"]
    if await asyncio.to_thread(jobs.store.cancel, job_id):
        return web.json_response({"jobId": job_id, "cancelled": True})
    if await asyncio.to_thread(jobs.store.get, job_id, request.app[SERVICE].clock_ms()) is None:
        raise NotFound(f"no job {job_id!r}")
    raise NotCancellable(f"job {job_id!r} is no longer queued")


async def receipts(request: web.Request) -> web.Response:
    """[ext] reconciliation: the receipts we issued to the requester who signed this request."""
    service = request.app[SERVICE]
    requester = service.authenticate(request.headers, "GET", request.path_qs, b"", signed_only=True)
    query = parse_model(ReceiptsQuery, dict(request.query))
    page = await asyncio.to_thread(
        service.ledger.issued, service.identity.pubkey, requester, query.since, query.limit
    )
    following = next_since([completed_at for completed_at, _ in page], query.since, query.limit)
    # Each receipt's JSON is the text stored when it was issued; the page only joins them.
    texts = ",".join(signed for _, signed in page)
    text = f'{{"receipts":[{texts}],"next":{"null" if following is None else following}}}'
    return web.Response(text=text, content_type="application/json")


async def _admit(request: web.Request, schema: type[C]) -> tuple[C, str]:
    """Authenticate, parse, and check model and credit, in that order."""
    service = request.app[SERVICE]
    raw = await read_body(request)
    requester = service.authenticate(request.headers, request.method, request.path, raw)
    body = parse_body(raw, schema)
    n = getattr(body, "n", None)
    if n is not None and n > 1 and not getattr(service.engine, "serves_n", False):
        raise RequestError(
            f"n={n}: this worker's engine ({service.engine.name}) gives one choice per "
            "request; send n separate requests", param="n"
        )
    await service.require_model(body.model)
    await service.check_credit(requester)
    return body, requester
