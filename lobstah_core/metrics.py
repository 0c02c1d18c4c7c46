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

from bisect import bisect_left
from collections import Counter
from collections.abc import Iterator, Sequence

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Gauge, generate_latest
from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.utils import floatToGoString

from .protocol.schemas import SelfBalance

__all__ = ["BalanceGauge", "Tally", "LatencyTally", "metrics_response", "LATENCY_BUCKETS_S"]

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


class Tally:
    """A Prometheus counter with labels, kept as plain integers and written out at each scrape
    (a custom collector, prometheus-client's way for values kept elsewhere).

    For counters moved on every request: ``prometheus_client.Counter`` takes a lock and finds
    its label child on each ``inc``; here an ``inc`` is one dict update. Only for code on one
    thread (the event loop). ``name`` without ``_total``: the exposition adds it.
    """

    def __init__(self, registry: CollectorRegistry, name: str, documentation: str, labels: Sequence[str]) -> None:
        self.name, self.documentation, self.labels = name, documentation, list(labels)
        self.values: Counter[tuple[str, ...]] = Counter()
        registry.register(self)

    def inc(self, labels: tuple[str, ...], amount: int = 1) -> None:
        self.values[labels] += amount

    def collect(self) -> Iterator[Metric]:
        family = CounterMetricFamily(self.name, self.documentation, labels=self.labels)
        for labels, value in self.values.items():
            family.add_metric(labels, value)
        yield family


class LatencyTally:
    """A Prometheus histogram of seconds with one label, in :data:`LATENCY_BUCKETS_S`, kept as
    plain bucket counts and written out at each scrape (as :class:`Tally`)."""

    def __init__(self, registry: CollectorRegistry, name: str, documentation: str, label: str) -> None:
        self.name, self.documentation, self.label = name, documentation, label
        #: label value -> ([count per bucket, the last above every bound], [sum of seconds])
        self.values: dict[str, tuple[list[int], list[float]]] = {}
        self._bounds = [floatToGoString(bound) for bound in LATENCY_BUCKETS_S] + ["+Inf"]
        registry.register(self)

    def observe(self, label: str, seconds: float) -> None:
        entry = self.values.get(label)
        if entry is None:
            entry = self.values[label] = ([0] * (len(LATENCY_BUCKETS_S) + 1), [0.0])
        entry[0][bisect_left(LATENCY_BUCKETS_S, seconds)] += 1  # the first bound >= seconds: "le"
        entry[1][0] += seconds

    def collect(self) -> Iterator[Metric]:
        family = HistogramMetricFamily(self.name, self.documentation, labels=[self.label])
        for label, (counts, total) in self.values.items():
            cumulative, buckets = 0, []
            for bound, count in zip(self._bounds, counts):
                cumulative += count
                buckets.append((bound, cumulative))
            family.add_metric([label], buckets, sum_value=total[0])
        yield family
