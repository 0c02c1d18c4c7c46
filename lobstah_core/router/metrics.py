"""The router's Prometheus metrics (``GET /metrics``); shared parts in lobstah_core/metrics.py.

=============================================  ===========================================
metric                                         what it counts
=============================================  ===========================================
``lobstah_router_requests_total``              calls through the dispatch core, by
                                               ``model``, ``peer`` (that answered, else "")
                                               and ``outcome`` (dispatch.CallRecord)
``lobstah_router_first_byte_seconds``          histogram by ``model``: to the chosen
                                               peer's status line (plain) or first piece
                                               (stream)
``lobstah_router_request_duration_seconds``    histogram by ``model``: whole calls
``lobstah_router_input_tokens_total``,         tokens in the receipts accepted, by
``lobstah_router_output_tokens_total``         ``model``
``lobstah_router_receipts_accepted_total``     by ``peer``
``lobstah_router_receipts_rejected_total``     by ``reason`` (bad_signature, stale, ...)
``lobstah_router_peer_failures_total``         failed calls and probes, by ``peer``
``lobstah_router_peer_exclusions_total``       times a peer was left out, by ``peer``
``lobstah_router_peers``                       peers now, by ``state`` (healthy, excluded)
``lobstah_router_peer_queue_depth``            the queue each peer last reported
``lobstah_router_peer_in_flight``              our calls to each peer now
``lobstah_balance_tokens``                     earned, spent, net, available (by ``kind``)
=============================================  ===========================================

Counters of receipts, tokens, failures and exclusions come from the event bus; requests from
the dispatch core's ``on_call``; gauges are read at each scrape.

A ``model`` label is what a client asked for. Models some peer serves are bounded by the
grid; names no peer serves (outcomes ``no_model`` and ``unavailable``) are the client's to
choose, so only the first :data:`UNSERVED_MODEL_LABELS` of them get a label of their own, and
only if printable and at most :data:`UNSERVED_MODEL_LABEL_CHARS` long; the rest count under
``model="(other)"``: a client sending random or huge names cannot grow the registry (and
every scrape) without bound.
"""

from __future__ import annotations


from prometheus_client import CollectorRegistry, Counter, Gauge

from ..events import Event, PeerExcluded, PeerFailed, ReceiptAccepted, ReceiptRejected
from ..metrics import BalanceGauge, LatencyTally, Tally
from ..protocol.schemas import SelfBalance
from .directory import PeerDirectory
from .dispatch import CallRecord

__all__ = ["RouterMetrics", "UNSERVED_MODEL_LABELS", "UNSERVED_MODEL_LABEL_CHARS"]

#: How many distinct names of models no peer serves get a ``model`` label of their own.
UNSERVED_MODEL_LABELS = 32
#: The longest such name that does: each label is repeated on every histogram bucket, so a
#: 100,000-character name cost ~2 MB of every scrape. Real names (``hf.co/org/repo:quant``)
#: are well under it.
UNSERVED_MODEL_LABEL_CHARS = 128
#: Outcomes decided before any peer was asked: the model may be any string at all.
_UNSERVED = frozenset({"no_model", "unavailable"})


class RouterMetrics:
    """One router's metrics in their own registry."""

    def __init__(self) -> None:
        self.registry = registry = CollectorRegistry()
        # Moved on every request: plain tallies written out at scrape (lobstah_core/metrics.py).
        self.requests = Tally(registry, "lobstah_router_requests", "Calls through the router, by model, answering peer and outcome",
                              ["model", "peer", "outcome"])
        self.first_byte = LatencyTally(registry, "lobstah_router_first_byte_seconds", "Seconds to the chosen peer's first byte", "model")
        self.duration = LatencyTally(registry, "lobstah_router_request_duration_seconds", "Seconds a call took in all", "model")
        self.input_tokens = Tally(registry, "lobstah_router_input_tokens", "Input tokens of receipts accepted", ["model"])
        self.output_tokens = Tally(registry, "lobstah_router_output_tokens", "Output tokens of receipts accepted", ["model"])
        self.accepted = Tally(registry, "lobstah_router_receipts_accepted", "Receipts verified and ledgered", ["peer"])
        self.rejected = Counter("lobstah_router_receipts_rejected", "Receipts refused, by reason", ["reason"], registry=registry)
        self.failures = Counter("lobstah_router_peer_failures", "Failed calls and probes, by peer", ["peer"], registry=registry)
        self.exclusions = Counter("lobstah_router_peer_exclusions", "Times a peer was excluded", ["peer"], registry=registry)
        self.peers = Gauge("lobstah_router_peers", "Peers, by state", ["state"], registry=registry)
        self.queue_depth = Gauge("lobstah_router_peer_queue_depth", "Queue depth each peer last reported", ["peer"], registry=registry)
        self.in_flight = Gauge("lobstah_router_peer_in_flight", "Calls from this router to each peer now", ["peer"], registry=registry)
        self.balance = BalanceGauge(registry)
        #: Where peers' names come from, for labels (set once the router has its peers).
        self.directory: PeerDirectory | None = None
        self._unserved: set[str] = set()

    def observe_call(self, record: CallRecord) -> None:
        """The dispatch core's ``on_call``."""
        model = record.model
        if record.outcome in _UNSERVED and model not in self._unserved:
            if len(self._unserved) < UNSERVED_MODEL_LABELS and len(model) <= UNSERVED_MODEL_LABEL_CHARS and model.isprintable():
                self._unserved.add(model)
            else:
                model = "(other)"
        self.requests.inc((model, record.peer, record.outcome))
        self.duration.observe(model, record.total_s)
        if record.first_byte_s is not None:
            self.first_byte.observe(model, record.first_byte_s)

    def record(self, event: Event) -> None:
        """Count one event of the bus."""
        if isinstance(event, ReceiptAccepted):
            self.accepted.inc((self._name(event.peer),))
            self.input_tokens.inc((event.model,), event.input_tokens)
            self.output_tokens.inc((event.model,), event.output_tokens)
        elif isinstance(event, ReceiptRejected):
            self.rejected.labels(event.reason).inc()
        elif isinstance(event, PeerFailed):
            self.failures.labels(self._name(event.peer)).inc()
        elif isinstance(event, PeerExcluded):
            self.exclusions.labels(self._name(event.peer)).inc()

    def read_state(self, directory: PeerDirectory, now_ms: int, balance: SelfBalance) -> None:
        """Set the gauges from the peers' health and the ledger's balance (at each scrape)."""
        states = {"healthy": 0, "excluded": 0}
        for metric in (self.queue_depth, self.in_flight):
            metric.clear()  # peers removed since the last scrape drop out
        for peer in directory.active():
            health = directory.health.of(peer.pubkey)
            states["excluded" if health.excluded(now_ms) else "healthy"] += 1
            self.in_flight.labels(peer.name).set(health.in_flight)
            if health.capacity is not None:
                self.queue_depth.labels(peer.name).set(health.capacity.queue_depth)
        for state, count in states.items():
            self.peers.labels(state).set(count)
        self.balance.set(balance)

    def _name(self, pubkey: str) -> str:
        peer = self.directory.peers.get(pubkey) if self.directory is not None else None
        return peer.name if peer is not None else pubkey[:12]
