"""The tracker's aiohttp app (WIRE.md "Announcements and the tracker")."""

from __future__ import annotations

from collections.abc import Callable

from aiohttp import web

from ..clock import wall_clock_ms
from ..errors import InvalidJson, MalformedMessage
from ..http import MAX_BODY, error_middleware, read_body
from ..protocol.wire import parse_json
from .registry import Limits, Registry

__all__ = ["create_app", "REGISTRY"]

REGISTRY = web.AppKey("registry", Registry)
#: Announcements are small; anything bigger is not one.
MAX_BODY_BYTES = 64 * 1024


class BadJson(InvalidJson):
    type = "bad_json"  # the JS tracker's name for it


def create_app(limits: Limits | None = None, clock_ms: Callable[[], int] = wall_clock_ms) -> web.Application:
    app = web.Application(client_max_size=MAX_BODY_BYTES, middlewares=[error_middleware])
    app[MAX_BODY] = MAX_BODY_BYTES
    app[REGISTRY] = Registry(clock_ms, limits)
    app.router.add_get("/", index)
    app.router.add_get("/peers", peers)
    app.router.add_post("/announce", announce)
    app.router.add_post("/unannounce", unannounce)
    return app


async def index(request: web.Request) -> web.Response:
    return web.Response(text=f"lobstah-tracker: {request.app[REGISTRY].live_count()} live peers")


async def peers(request: web.Request) -> web.Response:
    # Each announcement's JSON was made once, when it arrived; a read only joins them.
    live = request.app[REGISTRY].live_json()
    text = f'{{"version":1,"count":{len(live)},"peers":[{",".join(live)}]}}'
    return web.Response(text=text, content_type="application/json")


async def announce(request: web.Request) -> web.Response:
    registry = request.app[REGISTRY]
    signed = registry.announce(await _json(request))
    # The TTL granted, not the one asked for: 60–600 s (WIRE.md).
    body = {"ok": True, "pubkey": signed.announcement.pubkey, "ttlSeconds": signed.announcement.granted_ttl_seconds,
            "registeredCount": registry.live_count()}
    return web.json_response(body)


async def unannounce(request: web.Request) -> web.Response:
    removed = request.app[REGISTRY].unannounce(await _json(request))
    return web.json_response({"ok": True, "removed": removed})


async def _json(request: web.Request) -> object:
    raw = await read_body(request)
    try:
        return parse_json(raw)
    except MalformedMessage as exc:
        raise BadJson(f"request body is {exc.message}") from None

