"""[ext] Reconciliation: a router asks a worker for the receipts it issued to the router.

``GET /v1/receipts?since=<ms>&limit=<n>``, signed by the requester (WIRE.md "[ext] signed
requests"; the signed path includes the query string), answers
``{"receipts": [signed receipts…], "next": <ms> | null}``: the receipts the worker issued to
that requester with ``completedAt >= since``, oldest first, at most ``limit`` (≤ 1000, default
500); ``next`` is the ``since`` of the following page, ``null`` on the last one. Pages overlap
by the receipts of one millisecond (the router already holds those: their nonces are known).
The router ledgers what it lacks after the usual checks except freshness, since it asked.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from pydantic import BaseModel, Field

from .canonical import MAX_SAFE_INTEGER
from .wire import EpochMs

__all__ = [
    "RECEIPTS_PATH",
    "DEFAULT_PAGE",
    "MAX_PAGE",
    "ReceiptsQuery",
    "ReceiptPage",
    "receipts_path",
    "next_since",
]

RECEIPTS_PATH = "/v1/receipts"
DEFAULT_PAGE = 500
MAX_PAGE = 1000


class ReceiptsQuery(BaseModel):
    """The query string of ``GET /v1/receipts`` (values arrive as text, hence not strict)."""

    #: Milliseconds since the epoch; receipts completed at or after it.
    since: int = Field(0, ge=0, le=MAX_SAFE_INTEGER)
    limit: int = Field(DEFAULT_PAGE, ge=1, le=MAX_PAGE)


class ReceiptPage(BaseModel):
    """The answer of ``GET /v1/receipts``. Receipts stay raw JSON here: each is checked on its
    own, so one a worker garbled costs only itself."""

    receipts: list[Any]
    next: EpochMs | None = None


def receipts_path(since_ms: int, limit: int = DEFAULT_PAGE) -> str:
    """The path and query a router requests (and signs) for one page."""
    return f"{RECEIPTS_PATH}?{urlencode({'since': since_ms, 'limit': limit})}"


def next_since(completed_ats: list[int], since_ms: int, limit: int) -> int | None:
    """The ``next`` of a page whose receipts completed at ``completed_ats`` (oldest first).

    ``None`` when the page is not full (nothing more). Otherwise the last ``completedAt``, so
    that the receipts of that millisecond the page cut off come with the next one; if the whole
    page is one millisecond, the next page starts after it (more than ``limit`` receipts in one
    millisecond is not a case a worker meets).
    """
    if len(completed_ats) < limit:
        return None
    last = completed_ats[-1]
    return last if last > since_ms else last + 1
