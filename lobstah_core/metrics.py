"""What the router's and the worker's ``GET /metrics`` share (Prometheus's text format,
through ``prometheus-client``).

Each app has its own :class:`~prometheus_client.CollectorRegistry` (a node runs a router and a
worker in one process, and tests run many apps). Counters are fed from the event bus
(lobstah_core/events.py), the one way through the data, by a tap: every event is counted as it
is published, none lost to a backlog and no turn of the loop spent on it. Gauges of state
(peers, queue, the ledger's balance) are read when Prometheus scrapes. Names follow Prometheus
conventions: ``lobstah_<app>_…_total`` for counters, ``_seconds`` for durations, ``_tokens``
for credit.
"""

from __future__ import annotations

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Gauge, generate_latest

from .protocol.schemas import SelfBalance

__all__ = ["BalanceGauge", "metrics_response", "LATENCY_BUCKETS_S"]

#: Histogram buckets in seconds, from a cached answer to a long generation.
LATENCY_BUCKETS_S = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0)


class BalanceGauge:
    """``lobstah_balance_tokens{kind}``: this node's earned, spent, net and available credit
    in its own ledger (WIRE.md "Balances"), set at each scrape."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self._gauge = Gauge("lobstah_balance_tokens", "This node's credit in its own ledger, in tokens", ["kind"], registry=registry)

    def set(self, balance: SelfBalance) -> None:
        for kind in ("earned", "spent", "net", "available"):
            self._gauge.labels(kind).set(getattr(balance, kind))


def metrics_response(registry: CollectorRegistry) -> web.Response:
    """``registry`` in Prometheus's text format."""
    response = web.Response(body=generate_latest(registry))
    response.headers["Content-Type"] = CONTENT_TYPE_LATEST
    return response
