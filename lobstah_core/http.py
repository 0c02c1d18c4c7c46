"""What every Lobstah HTTP server shares: JSON errors, request parsing, running an app.

Errors are mapped to responses once, here, in a middleware: handlers raise
:class:`~lobstah_core.errors.LobstahError` subclasses and never build error bodies themselves.
A streaming handler opens its stream with :func:`open_event_stream`; an error raised after that
(the headers are gone) ends the stream with one error event instead of a second HTTP response
(WIRE.md "[ext] streams commit late, fail cleanly"), for every streaming handler at once.

Servers also close connections that sit idle or send their headers too slowly
(:data:`IDLE_CONNECTION_S`), so idle clients cannot use up the process's open files, and
aiohttp's own refusals of a malformed request (a header over 8 KiB, a bad request line) get the
JSON error shape too.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import signal
import sys
from collections.abc import Awaitable, Callable
from typing import Any, TextIO, TypeVar

from aiohttp import http_exceptions, web
from aiohttp.web_protocol import RequestHandler
from pydantic import BaseModel, ValidationError

from .errors import (
    InvalidJson,
    LobstahError,
    PayloadTooLarge,
    RequestError,
    RequestTimeout,
    UnreadableBody,
    UnsupportedMediaType,
)
from .protocol.wire import describe_validation_error
from .timeouts import PhaseTimeout, Timeouts, idle_chunks

__all__ = [
    "error_middleware",
    "error_response",
    "read_body",
    "read_raw_body",
    "parse_body",
    "json_response",
    "start_site",
    "RunningServer",
    "MAX_BODY",
    "ShutdownSignals",
    "serve_until_signal",
    "open_event_stream",
    "sse_error_event",
    "IDLE_CONNECTION_S",
    "ERROR_SHAPES",
]

log = logging.getLogger("lobstah")
#: The app's body-size limit in bytes, for the 413 message.
MAX_BODY = web.AppKey("max_body", int)
M = TypeVar("M", bound=BaseModel)

#: aiohttp's own refusals, re-expressed as the grid's error types.
_HTTP_TYPES = {404: "not_found", 405: "method_not_allowed", 413: "payload_too_large"}
#: Seconds a connection may sit without a request, or take to send its headers, before the
#: server closes it (long enough for clients' keep-alive pools, short enough that hundreds of
#: idle sockets cannot exhaust a Mac's 256 open files).
IDLE_CONNECTION_S = 20.0
#: The app's idle limit in seconds, while a request body arrives (set by RunningServer).
BODY_IDLE_S = web.AppKey("body_idle_s", float)
#: How a committed stream reports an error: bytes to write, then the stream ends.
_OPEN_STREAM = web.RequestKey("open_stream", tuple)
#: How error bodies are shaped on some paths when not as ``{"error": {"type", "message"}}``:
#: path prefix -> a function of that body (the Ollama API's routes answer ``{"error":
#: "<message>"}``). Looked up only when there is an error; a committed stream uses its
#: ``failure`` instead.
ERROR_SHAPES = web.AppKey("error_shapes", dict)
#: The CORS preflight answerer :func:`install_cors` puts in the app, if any.
_PREFLIGHT = web.AppKey("cors_preflight", object)


def sse_error_event(body: dict[str, Any]) -> bytes:
    """An error body as the last events of an OpenAI SSE stream: the error, then ``[DONE]``."""
    return b"data: " + json.dumps(body, separators=(",", ":")).encode() + b"\n\ndata: [DONE]\n\n"


class _HeadersWithFirstBytes(web.StreamResponse):
    """A stream whose status line and headers leave in one packet with its first bytes
    (aiohttp's own ``Response`` does the same; ``write(b"")`` sends them alone)."""

    _send_headers_immediately = False


async def open_event_stream(
    request: web.Request,
    content_type: str = "text/event-stream",
    failure: Callable[[dict[str, Any]], bytes] = sse_error_event,
    *,
    headers_now: bool = True,
) -> web.StreamResponse:
    """Commit a streamed answer: 200 and the headers, and register how an error raised later
    ends it (``failure`` turns an error body into the stream's last bytes).

    Args:
        headers_now: send the headers at once; else with the first bytes written (one packet
            fewer for a stream whose first event is at hand; ``await response.write(b"")``
            sends them alone).
    """
    headers = {"Content-Type": content_type, "Cache-Control": "no-cache"}
    response = web.StreamResponse(headers=headers) if headers_now else _HeadersWithFirstBytes(headers=headers)
    await response.prepare(request)
    request[_OPEN_STREAM] = (response, failure)
    return response


async def _end_stream(request: web.Request, body: dict[str, Any]) -> web.StreamResponse:
    """End a committed stream with ``body`` as its error (nothing more if the client left)."""
    response, failure = request[_OPEN_STREAM]
    try:
        await response.write(failure(body))
        await response.write_eof()
    except (ConnectionError, RuntimeError):
        pass  # the client is gone, or the stream had already ended
    return response


def error_response(error: LobstahError, shape: Callable[[dict[str, Any]], Any] | None = None) -> web.Response:
    """The JSON error response of ``error`` (its body passed through ``shape`` if given), with
    ``Retry-After`` where it applies."""
    body = error.to_body()
    response = web.json_response(shape(body) if shape else body, status=error.status)
    retry_after = getattr(error, "retry_after", None)
    if retry_after is not None:
        response.headers["Retry-After"] = str(retry_after)
    return response


@web.middleware
async def error_middleware(request: web.Request, handler: Any) -> web.StreamResponse:
    """Turn every error into ``{"error": {"type", "message"}}`` with the right status (or the
    path's :data:`ERROR_SHAPES` shape), and answer CORS preflights when :func:`install_cors`
    set them up (here, not in a middleware of their own: one layer less on every request)."""
    try:
        if request.method == "OPTIONS" and _PREFLIGHT in request.app:
            answer = request.app[_PREFLIGHT](request)
            if answer is not None:
                return answer
        return await handler(request)
    except LobstahError as error:
        if getattr(error, "close_connection", False):
            response = error_response(error, _shape_of(request))
            response.force_close()  # the rest of its body is not worth waiting for
            return response
        if _OPEN_STREAM in request:
            log.warning("stream on %s ended by an error: %s", request.path, error.message)
            return await _end_stream(request, error.to_body())
        return error_response(error, _shape_of(request))
    except (ConnectionResetError, ConnectionAbortedError):
        raise  # the client went away: nobody is left to tell
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        kind = _HTTP_TYPES.get(exc.status, "http_error")
        if exc.status == 413:
            message = f"request body is larger than the {request.client_max_size}-byte limit"
        else:
            message = f"{exc.reason}: {request.method} {request.path}"
        body = {"error": {"type": kind, "message": message}}
        return web.json_response(_shaped(request, body), status=exc.status, headers=_allow_header(exc))
    except Exception:
        log.exception("internal error on %s %s", request.method, request.path)
        body = {"error": {"type": "internal_error", "message": "internal server error"}}
        if _OPEN_STREAM in request:
            return await _end_stream(request, body)
        return web.json_response(_shaped(request, body), status=500)


def _shaped(request: web.Request, body: dict[str, Any]) -> Any:
    shape = _shape_of(request)
    return shape(body) if shape else body


def _shape_of(request: web.Request) -> Callable[[dict[str, Any]], Any] | None:
    for prefix, shape in request.app.get(ERROR_SHAPES, {}).items():
        if request.path.startswith(prefix):
            return shape
    return None


def _allow_header(exc: web.HTTPException) -> dict[str, str]:
    allow = exc.headers.get("Allow")
    return {"Allow": allow} if allow else {}


async def read_body(request: web.Request) -> bytes:
    """The raw body of a JSON request (:func:`read_raw_body` once the type is checked).

    Raises:
        UnsupportedMediaType: the body is not declared as JSON.
        PayloadTooLarge, RequestTimeout, UnreadableBody: as :func:`read_raw_body`.
    """
    if request.content_type != "application/json":
        raise UnsupportedMediaType(
            f"send the body as application/json, not {request.content_type or 'nothing'}"
        )
    return await read_raw_body(request)


async def read_raw_body(request: web.Request) -> bytes:
    """The raw body of a request whatever its declared type (Ollama's clients send JSON as
    ``curl -d`` does, form-encoded; an upload is multipart), decoded as its
    ``Content-Encoding`` says.

    Raises:
        PayloadTooLarge: over the app's ``client_max_size``.
        RequestTimeout: the body stalled for the server's idle limit (the connection is closed).
        UnreadableBody: the body is not in the encoding its headers declare (closed too).
    """
    limit = request.app.get(MAX_BODY, request.client_max_size)
    idle = request.app.get(BODY_IDLE_S, IDLE_CONNECTION_S)
    if request.content_length is not None and request.content_length > limit:
        raise PayloadTooLarge(f"request body is larger than the {limit}-byte limit")
    pieces, size = [], 0
    try:
        if request.content.is_eof():  # the whole body came with the headers (the usual case)
            body = request.content.read_nowait(-1)
            if len(body) > limit:
                raise PayloadTooLarge(f"request body is larger than the {limit}-byte limit")
            return body
        # Each piece within the idle limit: a client that stalls mid-body would otherwise hold
        # its handler and socket for good (the connection's idle timer does not run meanwhile).
        async for piece in idle_chunks(request.content.readany, Timeouts(idle_s=idle)):
            size += len(piece)
            if size > limit:
                raise PayloadTooLarge(f"request body is larger than the {limit}-byte limit")
            pieces.append(piece)
    except PhaseTimeout:
        raise RequestTimeout(f"the request body stopped arriving for {idle:g} s") from None
    except web.RequestPayloadError as exc:
        # aiohttp's parser failed on the body (its cause says why: "Can not decode
        # content-encoding: gzip"); the client's mistake, not the server's.
        reason = getattr(exc.__cause__, "message", None) or " ".join(str(exc).split())
        # Nothing more of it will be read: the connection closes after the 400 (UnreadableBody).
        # Marked ended, aiohttp does not drain it first, which re-raised this error and logged
        # it as an "Unhandled exception" with a traceback.
        request.content.feed_eof()
        raise UnreadableBody(f"the request body cannot be read: {reason}") from None
    return b"".join(pieces)


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


class _JsonErrorHandler(RequestHandler):
    """aiohttp's connection handler, answering its own refusals (a request it cannot parse)
    in the JSON error shape instead of plain text."""

    def handle_error(
        self,
        request: Any,
        status: int = 500,
        exc: BaseException | None = None,
        message: str | None = None,
    ) -> web.StreamResponse:
        super().handle_error(request, status, exc, message)  # logs; raises if bytes were sent
        if isinstance(exc, http_exceptions.LineTooLong):
            status, kind = 431, "request_header_too_large"
            text = f"a request line or header is longer than the server accepts ({exc.args[0] if exc.args else ''})"
        elif status >= 500:
            kind, text = "internal_error", "internal server error"
        else:
            kind = "bad_request"
            text = f"malformed HTTP request: {getattr(exc, 'message', None) or message or exc or 'unreadable'}"
        response = web.json_response({"error": {"type": kind, "message": text.strip()}}, status=status)
        response.force_close()
        return response


class _Server(web.Server):
    def __call__(self) -> RequestHandler:
        return _JsonErrorHandler(self, loop=self._loop, **self._kwargs)


class _AppRunner(web.AppRunner):
    """``web.AppRunner`` whose connections use :class:`_JsonErrorHandler`."""

    async def _make_server(self) -> web.Server:
        server = await super()._make_server()
        server.__class__ = _Server  # same state, one method more: its handlers answer JSON
        return server


class RunningServer:
    """An app served on a port in the current event loop (what tests, ``serve`` and the CLI use).

    Connections idle (or sending headers) for more than :data:`IDLE_CONNECTION_S` are closed.
    """

    def __init__(
        self, app: web.Application, host: str, port: int, what: str, idle_connection_s: float = IDLE_CONNECTION_S
    ) -> None:
        # handler_cancellation: a client that hangs up cancels its handler, and with it any
        # engine call or upstream request the handler was waiting on.
        # lingering_time: how long the rest of a body is drained after an early answer (a 413,
        # a 408 for a stalled body), so the client reads the answer rather than a reset.
        self.runner: web.AppRunner = _AppRunner(
            app, handler_cancellation=True, keepalive_timeout=idle_connection_s,
            lingering_time=min(idle_connection_s, 2.0),
        )
        if BODY_IDLE_S not in app:
            app[BODY_IDLE_S] = idle_connection_s
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


class ShutdownSignals:
    """``with ShutdownSignals() as signals``: SIGINT and SIGTERM request a clean shutdown for as
    long as the block runs; ``await signals.wait()`` returns once one has.

    Enter it before the banner says the server is up: whoever reads the banner may signal at
    once (a supervisor, a test), and a signal that came before the handlers killed the process
    outright, servers unstopped and receipts unflushed. Must be entered on the running loop.
    """

    _SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __enter__(self) -> ShutdownSignals:
        self._stop = asyncio.Event()
        self._loop = asyncio.get_running_loop()
        for sig in self._SIGNALS:
            self._loop.add_signal_handler(sig, self._stop.set)
        return self

    def __exit__(self, *exc_info: object) -> None:
        for sig in self._SIGNALS:
            self._loop.remove_signal_handler(sig)

    async def wait(self, limit_s: float | None = None) -> None:
        """Return on the first signal (also one that came before this call), or once ``limit_s``
        seconds have passed, if given: a run with a time limit still stops cleanly on a signal."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stop.wait(), limit_s)


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
    with ShutdownSignals() as signals:
        await server.start()
        try:
            if after_start is not None:
                await after_start()
            for line in await banner():
                print(line, file=out)
            out.flush()
            await signals.wait()
            print("shutting down", file=out)
            if before_stop is not None:
                await before_stop()
        finally:
            await server.stop()


#: Browser origins allowed by default, as Ollama allows them: pages served from this machine.
LOOPBACK_ORIGINS = ("http://localhost", "http://127.0.0.1", "http://[::1]", "https://localhost", "https://127.0.0.1", "https://[::1]")


def origin_allowed(origin: str, extra: tuple[str, ...] | list[str]) -> bool:
    """Whether a browser page from ``origin`` may call us: a loopback origin on any port, an
    origin listed in ``extra`` exactly, or anything when ``extra`` holds ``*``."""
    if "*" in extra or origin in extra:
        return True
    for base in LOOPBACK_ORIGINS:
        if origin == base or (origin.startswith(base + ":") and origin[len(base) + 1 :].isdigit()):
            return True
    return False


def install_cors(app: web.Application, extra_origins: tuple[str, ...] | list[str] = ()) -> None:
    """CORS for browser clients (Fetch standard, "CORS protocol"), like Ollama's default.

    Preflights (``OPTIONS`` with ``Access-Control-Request-Method``) from an allowed origin get
    204 with the methods and headers they asked for; every answer to an allowed origin, streams
    included, carries ``Access-Control-Allow-Origin``; other origins get no CORS headers (the
    browser then keeps the answer from the page). Hand-written because aiohttp-cors has no
    any-port loopback rule. Call before the app starts; the app's middlewares must include
    :func:`error_middleware`, which answers the preflights.
    """
    extra = tuple(extra_origins)

    def allowed_origin(request: web.BaseRequest) -> str | None:
        origin = request.headers.get("Origin")
        return origin if origin is not None and origin_allowed(origin, extra) else None

    def preflight(request: web.BaseRequest) -> web.Response | None:
        if "Access-Control-Request-Method" not in request.headers or allowed_origin(request) is None:
            return None
        return web.Response(status=204, headers={
            "Access-Control-Allow-Methods": "GET, POST, DELETE, OPTIONS",
            "Access-Control-Allow-Headers": request.headers.get(
                "Access-Control-Request-Headers", "Authorization, Content-Type"),
            "Access-Control-Max-Age": "600",
        })

    async def add_headers(request: web.BaseRequest, response: web.StreamResponse) -> None:
        origin = allowed_origin(request)
        if origin is not None:
            response.headers["Access-Control-Allow-Origin"] = origin
            response.headers["Vary"] = "Origin"

    app[_PREFLIGHT] = preflight
    app.on_response_prepare.append(add_headers)
