"""The worker's Prometheus metrics (``GET /metrics``); shared parts in lobstah_core/metrics.py.

=============================================  ===========================================
metric                                         what it counts
=============================================  ===========================================
``lobstah_worker_requests_total``              requests by ``route`` (its pattern, e.g.
                                               ``/v1/jobs/{job_id}``) and ``status``
                                               (``cancelled``: the client hung up)
``lobstah_worker_request_duration_seconds``    histogram by ``route``; a stream's lasts
                                               until its end
``lobstah_worker_receipts_issued_total``       by ``model``
``lobstah_worker_input_tokens_total``,         tokens of the receipts issued, by ``model``
``lobstah_worker_output_tokens_total``
``lobstah_worker_queue_depth``                 engine calls running plus waiting now
``lobstah_balance_tokens``                     earned, spent, net, available (by ``kind``)
=============================================  ===========================================
"""

from __future__ import annotations

import time
from typing import Any

from aiohttp import web
from prometheus_client import CollectorRegistry, Gauge

from ..events import Event, ReceiptIssued
from ..metrics import BalanceGauge, LatencyTally, Tally
from ..protocol.schemas import SelfBalance

__all__ = ["WorkerMetrics"]


class WorkerMetrics:
    """One worker's metrics in their own registry; :attr:`middleware` counts requests."""

    def __init__(self) -> None:
        self.registry = registry = CollectorRegistry()
        # Moved on every request: plain tallies written out at scrape (lobstah_core/metrics.py).
        self.requests = Tally(registry, "lobstah_worker_requests", "Requests by route and status", ["route", "status"])
        self.duration = LatencyTally(registry, "lobstah_worker_request_duration_seconds", "Seconds a request took in all", "route")
        self.issued = Tally(registry, "lobstah_worker_receipts_issued", "Receipts signed for work done", ["model"])
        self.input_tokens = Tally(registry, "lobstah_worker_input_tokens", "Input tokens of receipts issued", ["model"])
        self.output_tokens = Tally(registry, "lobstah_worker_output_tokens", "Output tokens of receipts issued", ["model"])
        self.queue_depth = Gauge("lobstah_worker_queue_depth", "Engine calls running plus waiting", registry=registry)
        self.balance = BalanceGauge(registry)

    @web.middleware
    async def middleware(self, request: web.Request, handler: Any) -> web.StreamResponse:
        """Count each request by route and final status (put it before the error middleware)."""
        resource = request.match_info.route.resource
        route = resource.canonical if resource is not None else "unmatched"
        started, status = time.perf_counter(), "cancelled"
        try:
            response = await handler(request)
            status = str(response.status)
            return response
        finally:
            self.requests.inc((route, status))
            self.duration.observe(route, time.perf_counter() - started)

    def record(self, event: Event) -> None:
        """Count one event of the bus."""
        if isinstance(event, ReceiptIssued):
            self.issued.inc((event.model,))
            self.input_tokens.inc((event.model,), event.input_tokens)
            self.output_tokens.inc((event.model,), event.output_tokens)

    def read_state(self, queue_depth: int, balance: SelfBalance) -> None:
        """Set the gauges (at each scrape)."""
        self.queue_depth.set(queue_depth)
        self.balance.set(balance)
