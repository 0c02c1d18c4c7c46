"""The router's web status page (``GET /dashboard``) and the ledger it reads
(``GET /ledger?limit=N``), as the JavaScript grid's router serves them.

The page is one self-contained file (``dashboard.html``: no external assets, so it works
offline and under a strict CSP) that reads ``/balance``, ``/peers`` and ``/ledger`` and follows
``/events`` live. With ``--api-key``, open it as ``/dashboard#key=<key>``: the fragment never
leaves the browser, and the page sends the key as a header on each call.
"""

from __future__ import annotations

import asyncio
from importlib import resources

from aiohttp import web

from ..errors import RequestError
from .state import ROUTER

__all__ = ["dashboard", "ledger", "LEDGER_LIMIT", "LEDGER_DEFAULT"]

#: ``GET /ledger``: receipts given when no ``limit`` is, and the most one call may ask for.
LEDGER_DEFAULT = 50
LEDGER_LIMIT = 1000

_PAGE = resources.files(__package__).joinpath("dashboard.html")


async def ledger(request: web.Request) -> web.Response:
    """``GET /ledger?limit=N``: ``{"receipts": [signed receipts]}``, newest first.

    Raises:
        RequestError: ``limit`` is not an integer from 1 to :data:`LEDGER_LIMIT` (400).
    """
    raw = request.query.get("limit", str(LEDGER_DEFAULT))
    if not raw.isdigit() or not 1 <= int(raw) <= LEDGER_LIMIT:
        raise RequestError(f"limit must be an integer from 1 to {LEDGER_LIMIT}, not {raw!r}", param="limit")
    receipts = await asyncio.to_thread(request.app[ROUTER].ledger.recent, int(raw))
    return web.json_response({"receipts": [signed.to_wire() for signed in receipts]})


async def dashboard(request: web.Request) -> web.Response:
    """``GET /dashboard``: the page."""
    return web.Response(text=_PAGE.read_text(encoding="utf-8"), content_type="text/html")
