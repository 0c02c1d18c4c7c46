"""The event bus: subscribers may fall behind and lose the oldest events; taps see every one.
And the plain tallies /metrics counts them in."""

from __future__ import annotations

import asyncio
import logging

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from lobstah_core.events import EventBus, ReceiptAccepted
from lobstah_core.metrics import LATENCY_BUCKETS_S, LatencyTally, Tally
from lobstah_core.router.metrics import RouterMetrics

NOW = 1_795_000_000_000


def accepted(n: int) -> ReceiptAccepted:
    return ReceiptAccepted(NOW + n, "lob1" + "ab" * 32, "demo-fast", 10, 2, f"{n:032x}")


async def test_metrics_count_a_burst_longer_than_any_backlog() -> None:
    # 50 receipts between two turns of the loop, on a bus whose subscribers keep 10: the
    # dashboard's queue may drop the oldest, /metrics must not undercount.
    bus, metrics = EventBus(max_backlog=10), RouterMetrics()
    with bus.tap(metrics.record):
        async with bus.subscribe() as queue:
            for n in range(50):
                bus.publish(accepted(n))
            assert queue.qsize() == 10
    registry = metrics.registry
    assert registry.get_sample_value("lobstah_router_output_tokens_total", {"model": "demo-fast"}) == 100
    assert registry.get_sample_value("lobstah_router_receipts_accepted_total", {"peer": "lob1abababab"}) == 50


async def test_a_failing_tap_costs_neither_the_publisher_nor_the_subscribers(caplog: pytest.LogCaptureFixture) -> None:
    bus, seen = EventBus(), []

    def broken(event: object) -> None:
        raise ValueError("a bug in a counter")

    with bus.tap(broken), bus.tap(seen.append):
        async with bus.subscribe() as queue:
            with caplog.at_level(logging.ERROR, logger="lobstah"):
                bus.publish(accepted(1))
            assert await asyncio.wait_for(queue.get(), 1) == accepted(1)
    assert seen == [accepted(1)]
    assert "event tap" in caplog.text
    bus.publish(accepted(2))  # taps closed: nobody is called any more
    assert seen == [accepted(1)]


@settings(max_examples=50)
@given(st.lists(st.tuples(st.sampled_from(["a", "b:latest"]), st.floats(0, 400) | st.sampled_from(LATENCY_BUCKETS_S)), max_size=40))
def test_tallies_expose_what_prometheus_clients_own_metrics_would(observations: list[tuple[str, float]]) -> None:
    # /metrics keeps its hot counters and histograms as plain numbers; a scrape must read them
    # exactly as prometheus_client's Counter and Histogram would (bucket edges included).
    ours, theirs = CollectorRegistry(), CollectorRegistry()
    tally, latency = Tally(ours, "calls", "c", ["model"]), LatencyTally(ours, "took_seconds", "t", "model")
    counter = Counter("calls", "c", ["model"], registry=theirs)
    histogram = Histogram("took_seconds", "t", ["model"], buckets=LATENCY_BUCKETS_S, registry=theirs)
    for model, seconds in observations:
        tally.inc((model,))
        latency.observe(model, seconds)
        counter.labels(model).inc()
        histogram.labels(model).observe(seconds)

    def samples(registry: CollectorRegistry) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
        text = generate_latest(registry).decode()
        return {
            (s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text)
            for s in family.samples
            if not s.name.endswith("_created")
        }

    assert samples(ours) == pytest.approx(samples(theirs))
