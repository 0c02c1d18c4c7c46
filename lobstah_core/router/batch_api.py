"""The OpenAI Files and Batch APIs on the router ("cargo"): routes and their handlers.

``POST /v1/files`` (multipart ``file`` + ``purpose``; a ``batch`` file is checked line by line
at once, so a bad file is refused with its line numbers before anything runs), ``GET
/v1/files/{id}``, ``GET /v1/files/{id}/content``, ``DELETE /v1/files/{id}``; ``POST
/v1/batches``, ``GET /v1/batches`` (``after``, ``limit``), ``GET /v1/batches/{id}``, ``POST
/v1/batches/{id}/cancel``. Shapes are OpenAI's, so the official SDKs work unchanged; a batch
object also carries ``paused_reason`` (why it waits, or ``null``), which they ignore.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiohttp import BodyPartReader, MultipartReader, StreamReader, web
from aiohttp.http_exceptions import BadHttpMessage
from pydantic import BaseModel

from ..errors import NotCancellable, NotFound, RequestError
from ..http import json_response, parse_body, read_body, read_raw_body
from .app import ROUTER
from .batch_input import BATCH_ENDPOINTS, parse_batch_input
from .batch_scheduler import BatchScheduler
from .batch_store import ACTIVE_STATUSES, BatchStore, file_object, new_id

__all__ = ["install_batches", "Cargo", "CARGO", "completion_window_s"]

#: ``completion_window`` values: OpenAI takes only ``24h``; any ``<n>h``, ``<n>m`` or ``<n>s`` is
#: taken here too (a grid of friends may want results within the hour).
_WINDOW = re.compile(r"^([1-9][0-9]{0,5})([hms])$")
_UNIT_S = {"h": 3600, "m": 60, "s": 1}


@dataclass
class Cargo:
    """What the batch handlers share."""

    store: BatchStore
    scheduler: BatchScheduler


CARGO = web.AppKey("cargo", Cargo)


def install_batches(app: web.Application, home: Path) -> None:
    """Add the Files and Batch routes to a router app, with their store in
    ``home/batches.sqlite3``; batches left unfinished resume when the app starts."""

    async def lifecycle(app: web.Application) -> AsyncIterator[None]:
        router = app[ROUTER]
        store = BatchStore(home / "batches.sqlite3")
        scheduler = BatchScheduler(store, router.dispatcher, router.settlement, router.bus, router.clock_ms)
        await scheduler.start()
        app[CARGO] = Cargo(store, scheduler)
        yield
        await scheduler.stop()
        store.close()

    app.cleanup_ctx.append(lifecycle)
    app.router.add_post("/v1/files", create_file)
    app.router.add_get("/v1/files/{file_id}", get_file)
    app.router.add_get("/v1/files/{file_id}/content", file_content)
    app.router.add_delete("/v1/files/{file_id}", delete_file)
    app.router.add_post("/v1/batches", create_batch)
    app.router.add_get("/v1/batches", list_batches)
    app.router.add_get("/v1/batches/{batch_id}", get_batch)
    app.router.add_post("/v1/batches/{batch_id}/cancel", cancel_batch)


def completion_window_s(window: str) -> int:
    """Seconds of a ``completion_window`` such as ``24h``.

    Raises:
        RequestError: not ``<n>h``, ``<n>m`` or ``<n>s``.
    """
    match = _WINDOW.match(window)
    if match is None:
        raise RequestError(f"completion_window must be like '24h' (or '<n>m', '<n>s'), not {window!r}")
    return int(match.group(1)) * _UNIT_S[match.group(2)]


class BatchRequest(BaseModel):
    """``POST /v1/batches`` (fields this router does not know are ignored)."""

    input_file_id: str
    endpoint: str
    completion_window: str = "24h"
    metadata: dict[str, str] | None = None


@dataclass(frozen=True)
class Upload:
    """The fields of a ``POST /v1/files`` form this router reads."""

    content: bytes | None
    """The ``file`` field's bytes (None: no such field, or not a file)."""
    filename: str | None
    purpose: str | None


async def read_upload(request: web.Request) -> Upload:
    """The ``file`` and ``purpose`` fields of a multipart upload.

    The body is read whole first, under the same size and idle limits as every other body
    (aiohttp's ``request.post()`` waits on a stalled client for good), then parsed by aiohttp's
    multipart reader from memory.

    Raises:
        RequestError: not multipart, or a multipart body that cannot be parsed (400).
        PayloadTooLarge, RequestTimeout, UnreadableBody: as :func:`~lobstah_core.http.read_raw_body`.
    """
    if not request.content_type.startswith("multipart/"):
        raise RequestError("upload the file as multipart/form-data with fields 'file' and 'purpose'")
    raw = await read_raw_body(request)
    # A high-water mark above the body's size: the reader never asks the connection to pause.
    stream = StreamReader(request.protocol, len(raw) + 1, loop=asyncio.get_running_loop())
    stream.feed_data(raw)
    stream.feed_eof()
    fields: dict[str, tuple[str | None, bytes]] = {}
    try:
        parts = MultipartReader(request.headers, stream)
        while (part := await parts.next()) is not None:
            if isinstance(part, BodyPartReader) and part.name in ("file", "purpose") and part.name not in fields:
                fields[part.name] = (part.filename, bytes(await part.read(decode=True)))
            else:
                await part.release()
    except (ValueError, TypeError, RuntimeError, BadHttpMessage) as exc:
        raise RequestError(f"the upload is not a readable multipart/form-data body: {exc}") from None
    filename, content = fields.get("file", (None, None))
    purpose = fields.get("purpose", (None, None))[1]
    return Upload(content if filename is not None else None, filename, _text(purpose))


def _text(value: bytes | None) -> str | None:
    try:
        return None if value is None else value.decode()
    except UnicodeDecodeError:
        return repr(value)


async def create_file(request: web.Request) -> web.Response:
    """``POST /v1/files``: multipart ``file`` and ``purpose``; ``batch`` files are checked."""
    upload = await read_upload(request)
    if upload.content is None:
        raise RequestError("the form has no 'file' field holding a file")
    if upload.purpose != "batch":
        raise RequestError(f"purpose must be 'batch' (the only one this router stores), not {upload.purpose!r}")
    parse_batch_input(upload.content)
    cargo, now_s = request.app[CARGO], request.app[ROUTER].clock_ms() // 1000
    file = file_object(new_id("file-"), upload.filename or "batch.jsonl", len(upload.content), now_s, "batch")
    await asyncio.to_thread(cargo.store.add_file, file, upload.content)
    return json_response(file)


async def get_file(request: web.Request) -> web.Response:
    file_id = request.match_info["file_id"]
    return json_response(await _file(request, file_id))


async def file_content(request: web.Request) -> web.Response:
    file_id = request.match_info["file_id"]
    content = await asyncio.to_thread(request.app[CARGO].store.file_content, file_id)
    if content is None:
        raise NotFound(f"no file {file_id!r} on this router")
    return web.Response(body=content, content_type="application/jsonl")


async def delete_file(request: web.Request) -> web.Response:
    file_id = request.match_info["file_id"]
    if not await asyncio.to_thread(request.app[CARGO].store.delete_file, file_id):
        raise NotFound(f"no file {file_id!r} on this router")
    return json_response({"id": file_id, "object": "file", "deleted": True})


async def create_batch(request: web.Request) -> web.Response:
    """``POST /v1/batches``: the input file is checked against the endpoint, then runs."""
    cargo, router = request.app[CARGO], request.app[ROUTER]
    spec = parse_body(await read_body(request), BatchRequest)
    if spec.endpoint not in BATCH_ENDPOINTS:
        raise RequestError(f"endpoint must be one of {', '.join(BATCH_ENDPOINTS)}, not {spec.endpoint!r}")
    window_s = completion_window_s(spec.completion_window)
    await _file(request, spec.input_file_id)
    content = await asyncio.to_thread(cargo.store.file_content, spec.input_file_id) or b""
    items = parse_batch_input(content, spec.endpoint)
    now_s = router.clock_ms() // 1000
    batch = _batch_object(new_id("batch_"), spec, now_s, window_s)
    await asyncio.to_thread(cargo.store.add_batch, batch, items)
    await cargo.scheduler.submit(batch["id"])
    return json_response(await _batch(request, batch["id"]))


async def get_batch(request: web.Request) -> web.Response:
    return json_response(await _batch(request, request.match_info["batch_id"]))


async def list_batches(request: web.Request) -> web.Response:
    """``GET /v1/batches?after=ID&limit=N``: newest first, ``limit`` 1–100 (default 20)."""
    try:
        limit = int(request.query.get("limit", "20"))
    except ValueError:
        raise RequestError("limit must be a whole number from 1 to 100") from None
    if not 1 <= limit <= 100:
        raise RequestError("limit must be a whole number from 1 to 100")
    found, more = await asyncio.to_thread(request.app[CARGO].store.batches, request.query.get("after"), limit)
    found = [_public(batch) for batch in found]
    return json_response({
        "object": "list", "data": found, "has_more": more,
        "first_id": found[0]["id"] if found else None, "last_id": found[-1]["id"] if found else None,
    })


async def cancel_batch(request: web.Request) -> web.Response:
    """``POST /v1/batches/{id}/cancel``: 409 ``not_cancellable`` once the batch has ended."""
    batch = await _batch(request, request.match_info["batch_id"])
    if batch["status"] not in ACTIVE_STATUSES or batch["status"] == "finalizing":
        raise NotCancellable(f"batch {batch['id']} is {batch['status']} and cannot be cancelled")
    if batch["status"] == "cancelling":
        return json_response(batch)
    return json_response(await request.app[CARGO].scheduler.cancel(batch["id"]))


async def _file(request: web.Request, file_id: str) -> dict[str, Any]:
    file = await asyncio.to_thread(request.app[CARGO].store.file, file_id)
    if file is None:
        raise NotFound(f"no file {file_id!r} on this router")
    return file


async def _batch(request: web.Request, batch_id: str) -> dict[str, Any]:
    batch = await asyncio.to_thread(request.app[CARGO].store.batch, batch_id)
    if batch is None:
        raise NotFound(f"no batch {batch_id!r} on this router")
    return _public(batch)


def _public(batch: dict[str, Any]) -> dict[str, Any]:
    """The batch object without the scheduler's own bookkeeping."""
    return {key: value for key, value in batch.items() if key != "lobstah_ending"}


def _batch_object(batch_id: str, spec: BatchRequest, now_s: int, window_s: int) -> dict[str, Any]:
    """A new batch object in OpenAI's shape ("Batch API: the batch object"), ``validating``."""
    return {
        "id": batch_id, "object": "batch", "endpoint": spec.endpoint, "errors": None,
        "input_file_id": spec.input_file_id, "completion_window": spec.completion_window,
        "status": "validating", "output_file_id": None, "error_file_id": None,
        "created_at": now_s, "in_progress_at": None, "expires_at": now_s + window_s,
        "finalizing_at": None, "completed_at": None, "failed_at": None, "expired_at": None,
        "cancelling_at": None, "cancelled_at": None, "metadata": spec.metadata, "paused_reason": None,
    }
