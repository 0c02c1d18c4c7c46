"""Typed events of a node, and the bus they travel on.

One way through the data: servers publish what happens here, and everything that watches —
the router's ``/events`` SSE stream, the TUI, logs — subscribes to the same bus. No second
bookkeeping.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from typing import Any, ClassVar

__all__ = [
    "Event",
    "ReceiptAccepted",
    "ReceiptIssued",
    "ReceiptRejected",
    "ReceiptsRecovered",
    "PeerFailed",
    "PeerExcluded",
    "PeerReadmitted",
    "CapacityChanged",
    "BatchStatusChanged",
    "BatchProgressed",
    "EventBus",
    "event_to_json",
    "event_from_json",
]

log = logging.getLogger("lobstah")


@dataclass(frozen=True)
class Event:
    """Something that happened, at ``at`` (milliseconds since the epoch)."""

    kind: ClassVar[str] = "event"
    at: int


@dataclass(frozen=True)
class ReceiptAccepted(Event):
    """A worker's receipt verified and entered our ledger (we spent ``credit``)."""

    kind: ClassVar[str] = "receipt.accepted"
    peer: str
    model: str
    input_tokens: int
    output_tokens: int
    nonce: str


@dataclass(frozen=True)
class ReceiptIssued(Event):
    """Our worker signed a receipt for work it did (we earned ``credit``)."""

    kind: ClassVar[str] = "receipt.issued"
    requester: str
    model: str
    input_tokens: int
    output_tokens: int
    nonce: str


@dataclass(frozen=True)
class ReceiptRejected(Event):
    """A receipt refused: ``reason`` is one of bad_signature, wrong_requester, wrong_worker,
    inflated, stale, replayed, malformed, missing."""

    kind: ClassVar[str] = "receipt.rejected"
    peer: str
    reason: str
    message: str


@dataclass(frozen=True)
class ReceiptsRecovered(Event):
    """Reconciliation ledgered ``count`` receipts of ``peer`` that never reached us with its
    answers (a crash, a lost stream); each also came as a ``receipt.accepted``."""

    kind: ClassVar[str] = "receipts.recovered"
    peer: str
    count: int


@dataclass(frozen=True)
class PeerFailed(Event):
    """A call to a peer failed (connection, timeout, 5xx, 429)."""

    kind: ClassVar[str] = "peer.failed"
    peer: str
    message: str
    consecutive_failures: int


@dataclass(frozen=True)
class PeerExcluded(Event):
    """A peer is left out of selection until ``excluded_until``."""

    kind: ClassVar[str] = "peer.excluded"
    peer: str
    excluded_until: int


@dataclass(frozen=True)
class PeerReadmitted(Event):
    """An excluded peer answered again (or its exclusion ran out)."""

    kind: ClassVar[str] = "peer.readmitted"
    peer: str


@dataclass(frozen=True)
class CapacityChanged(Event):
    """A peer's reported models, queue depth or tier changed."""

    kind: ClassVar[str] = "capacity.changed"
    peer: str
    models: tuple[str, ...]
    queue_depth: int
    tier: str


@dataclass(frozen=True)
class BatchStatusChanged(Event):
    """A batch of the Batch API moved to ``status`` (OpenAI's lifecycle); ``reason`` says why
    it waits when it is paused (credit used up, no peer for its model), else ``None``. The
    counts are its ``request_counts`` at that moment (requests answered, failed, in all), so a
    watcher sees a batch whole from its first event on, and its final counts with its end."""

    kind: ClassVar[str] = "batch.status"
    batch_id: str
    status: str
    completed: int
    failed: int
    total: int
    reason: str | None = None


@dataclass(frozen=True)
class BatchProgressed(Event):
    """One request of a batch got its outcome (``peer`` answered it, or ``None``).

    Every count is a running total, never a step: a watcher that missed events (a full
    backlog, a reconnect) is right again at the next one. ``peer_completed`` is how many of the
    batch's requests ``peer`` has answered so far (0 when ``peer`` is ``None``).
    """

    kind: ClassVar[str] = "batch.progress"
    batch_id: str
    completed: int
    failed: int
    total: int
    peer: str | None
    peer_completed: int


def event_to_json(event: Event) -> dict[str, Any]:
    """The JSON form of an event: ``{"kind": ..., field: value, ...}``."""
    return {"kind": event.kind, **dataclasses.asdict(event)}


_KINDS: dict[str, type[Event]] = {
    cls.kind: cls
    for cls in (
        ReceiptAccepted, ReceiptIssued, ReceiptRejected, ReceiptsRecovered, PeerFailed, PeerExcluded,
        PeerReadmitted, CapacityChanged, BatchStatusChanged, BatchProgressed,
    )
}


def event_from_json(body: dict[str, Any]) -> Event | None:
    """The event a JSON form describes (``None`` for kinds this version does not know)."""
    cls = _KINDS.get(body.get("kind", ""))
    if cls is None:
        return None
    names = {f.name for f in dataclasses.fields(cls)}
    fields = {k: tuple(v) if isinstance(v, list) else v for k, v in body.items() if k in names}
    try:
        return cls(**fields)
    except TypeError:
        return None


class EventBus:
    """Fan-out of events to any number of subscribers, never blocking the publisher.

    A subscriber that falls more than ``max_backlog`` events behind loses the oldest ones
    (a slow dashboard must not slow the router down). A :meth:`tap` sees every event, as it is
    published, for counting that must neither wait for a turn of the loop nor miss any.
    """

    def __init__(self, max_backlog: int = 1000) -> None:
        self._subscribers: set[asyncio.Queue[Event]] = set()
        self._taps: list[Callable[[Event], None]] = []
        self._max_backlog = max_backlog

    def publish(self, event: Event) -> None:
        for tap in self._taps:
            try:
                tap(event)
            except Exception:  # a broken counter must not cost the publisher its work
                log.exception("event tap %r failed on %s", tap, event.kind)
        for queue in self._subscribers:
            if queue.full():
                queue.get_nowait()
            queue.put_nowait(event)

    @contextmanager
    def tap(self, record: Callable[[Event], None]) -> Iterator[None]:
        """Call ``record(event)`` for every event published while the context is open, inside
        :meth:`publish`: it must be quick and must not block (metrics counters, say)."""
        self._taps.append(record)
        try:
            yield
        finally:
            self._taps.remove(record)

    @asynccontextmanager
    async def subscribe(self) -> AsyncIterator[asyncio.Queue[Event]]:
        """A queue receiving every event published while the context is open."""
        queue: asyncio.Queue[Event] = asyncio.Queue(self._max_backlog)
        self._subscribers.add(queue)
        try:
            yield queue
        finally:
            self._subscribers.discard(queue)
