"""What every Lobstah HTTP server shares: JSON errors, request parsing, running an app.

Errors are mapped to responses once, here, in a middleware: handlers raise
:class:`~lobstah_core.errors.LobstahError` subclasses and never build error bodies themselves.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import sys
from collections.abc import Awaitable, Callable
from typing import Any, TextIO, TypeVar

from aiohttp import web
from pydantic import BaseModel, ValidationError

from .errors import (
    InvalidJson,
    LobstahError,
    PayloadTooLarge,
    RequestError,
    UnsupportedMediaType,
)
from .protocol.wire import describe_validation_error

__all__ = [
    "error_middleware",
    "error_response",
    "read_body",
    "parse_body",
    "json_response",
    "start_site",
    "RunningServer",
    "MAX_BODY",
    "wait_for_shutdown",
    "serve_until_signal",
]

log = logging.getLogger("lobstah")
#: The app's body-size limit in bytes, for the 413 message.
MAX_BODY = web.AppKey("max_body", int)
M = TypeVar("M", bound=BaseModel)

#: aiohttp's own refusals, re-expressed as the grid's error types.
_HTTP_TYPES = {404: "not_found", 405: "method_not_allowed", 413: "payload_too_large"}


def error_response(error: LobstahError) -> web.Response:
    """The JSON error response of ``error``, with ``Retry-After`` where it applies."""
    response = web.json_response(error.to_body(), status=error.status)
    retry_after = getattr(error, "retry_after", None)
    if retry_after is not None:
        response.headers["Retry-After"] = str(retry_after)
    return response


@web.middleware
async def error_middleware(request: web.Request, handler: Any) -> web.StreamResponse:
    """Turn every error into ``{"error": {"type", "message"}}`` with the right status."""
    try:
        return await handler(request)
    except LobstahError as error:
        return error_response(error)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        kind = _HTTP_TYPES.get(exc.status, "http_error")
        if exc.status == 413:
            message = f"request body is larger than the {request.client_max_size}-byte limit"
        else:
            message = f"{exc.reason}: {request.method} {request.path}"
        body = {"error": {"type": kind, "message": message}}
        return web.json_response(body, status=exc.status, headers=_allow_header(exc))
    except Exception:
        log.exception("internal error on %s %s", request.method, request.path)
        body = {"error": {"type": "internal_error", "message": "internal server error"}}
        return web.json_response(body, status=500)


def _allow_header(exc: web.HTTPException) -> dict[str, str]:
    allow = exc.headers.get("Allow")
    return {"Allow": allow} if allow else {}


async def read_body(request: web.Request) -> bytes:
    """The raw body of a JSON request.

    Raises:
        UnsupportedMediaType: the body is not declared as JSON.
        PayloadTooLarge: over the app's ``client_max_size``.
    """
    if request.content_type != "application/json":
        raise UnsupportedMediaType(
            f"send the body as application/json, not {request.content_type or 'nothing'}"
        )
    try:
        return await request.read()
    except web.HTTPRequestEntityTooLarge:
        limit = request.app.get(MAX_BODY, request.client_max_size)
        raise PayloadTooLarge(f"request body is larger than the {limit}-byte limit") from None


def parse_body(raw: bytes, model_type: type[M]) -> M:
    """A JSON body validated as ``model_type``: 400 ``invalid_json`` if it is not JSON, else 400
    naming the first bad field.

    pydantic parses and validates in one pass, without building the Python objects first: on
    the router's request path that is half the cost of ``json.loads`` and then validating.
    """
    try:
        return model_type.model_validate_json(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        if first["type"] == "json_invalid":
            reason = first.get("ctx", {}).get("error", first["msg"])
            raise InvalidJson(f"request body is not valid JSON ({reason})") from None
        raise RequestError(describe_validation_error(exc)) from None


def json_response(model: BaseModel | dict[str, Any] | list[Any], status: int = 200, **kwargs: Any) -> web.Response:
    """A JSON response from a pydantic model (wire key names) or plain data."""
    if isinstance(model, BaseModel):
        dump = getattr(model, "to_wire", None)
        body = dump() if dump else model.model_dump(mode="json")
    else:
        body = model
    return web.json_response(body, status=status, **kwargs)


class RunningServer:
    """An app served on a port in the current event loop (what tests, ``serve`` and the CLI use)."""

    def __init__(self, app: web.Application, host: str, port: int, what: str) -> None:
        # handler_cancellation: a client that hangs up cancels its handler, and with it any
        # engine call or upstream request the handler was waiting on.
        self.runner = web.AppRunner(app, handler_cancellation=True)
        self.host, self.port, self.what = host, port, what

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    async def start(self) -> RunningServer:
        self.host, self.port = await start_site(self.runner, self.host, self.port, what=self.what)
        return self

    async def stop(self) -> None:
        await self.runner.cleanup()


async def start_site(
    runner: web.AppRunner, host: str, port: int, *, what: str
) -> tuple[str, int]:
    """Bind ``runner`` on ``host:port`` (port 0 picks a free one); warn on all interfaces.

    Returns:
        The bound (host, port).
    """
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    try:
        await site.start()
    except BaseException:
        # setup() already opened the app's resources (sessions, ledgers): close them here, since
        # a caller whose start failed never gets to stop() what never started.
        await runner.cleanup()
        raise
    server = site._server  # aiohttp keeps the asyncio server here; it knows the real port
    sockets = getattr(server, "sockets", None) or []
    bound_port = sockets[0].getsockname()[1] if sockets else port
    if host in ("0.0.0.0", "::", ""):
        print(
            f"warning: the {what} listens on all interfaces ({host}); anyone who can reach "
            "this machine can use it",
            file=sys.stderr,
        )
    return host, bound_port


async def wait_for_shutdown() -> None:
    """Return on the first SIGINT or SIGTERM."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)


async def serve_until_signal(
    server: RunningServer,
    banner: Callable[[], Awaitable[list[str]]],
    out: TextIO,
    *,
    after_start: Callable[[], Awaitable[None]] | None = None,
    before_stop: Callable[[], Awaitable[None]] | None = None,
) -> None:
    """Start ``server``, print its banner, serve until SIGINT/SIGTERM, then stop cleanly.

    ``after_start`` runs once the server listens (e.g. start advertising it); ``before_stop``
    runs first on shutdown (stop advertising before the server goes away).
    """
    await server.start()
    try:
        if after_start is not None:
            await after_start()
        for line in await banner():
            print(line, file=out)
        out.flush()
        await wait_for_shutdown()
        print("shutting down", file=out)
        if before_stop is not None:
            await before_stop()
    finally:
        await server.stop()
