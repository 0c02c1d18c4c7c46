"""What a dashboard sees of a node, written once: the :class:`NodeView` protocol that a local
:class:`~lobstah_core.node.Node`, a :class:`~lobstah_core.remote.RemoteNode` and the tests'
replay node all implement; the snapshot; one peer row with its one wire form (the router's
``GET /peers``); one batch of the Batch API as read from its batch object; and the one parser
of a streamed chat answer.
"""

from __future__ import annotations

import heapq
import json
from collections.abc import AsyncIterable, AsyncIterator
from dataclasses import dataclass, field
from typing import Any, Protocol

from .errors import LobstahError
from .events import EventBus
from .protocol.receipts import SignedReceipt
from .protocol.schemas import Balance

__all__ = ["NodeView", "NodeSnapshot", "PeerView", "BatchView", "chat_stream_text", "busiest_peers"]


@dataclass(frozen=True)
class PeerView:
    """One peer as the router sees it: who, where, and its health.

    Times are ms since the epoch; ``excluded_until`` is 0 when the peer was never excluded.
    """

    pubkey: str
    label: str | None
    url: str
    #: ``manual`` (added by hand), ``tracker`` or ``nostr`` (discovered), ``self`` (this node).
    source: str
    models: tuple[str, ...]
    tier: str | None
    #: ``healthy`` or ``excluded``.
    state: str
    excluded_until: int
    consecutive_failures: int
    queue_depth: int | None
    in_flight: int
    #: Time to the first byte of the last answer, ms.
    ttfb_ms: float | None
    total_ms: float | None = None
    last_error: str | None = None
    capacity_error: str | None = None
    #: For discovered peers: when their announcement expires.
    expires_at: int | None = None
    #: The models it embeds (``POST /v1/embeddings``), when its engine says ([ext]).
    embedding_models: tuple[str, ...] = ()

    def to_wire(self) -> dict[str, Any]:
        """The router's ``GET /peers`` item: the peers.json entry plus ``health`` ([ext])."""
        entry: dict[str, Any] = {"pubkey": self.pubkey, "url": self.url, "source": self.source}
        if self.label is not None:
            entry["label"] = self.label
        if self.expires_at is not None:
            entry["expiresAt"] = self.expires_at
        entry["health"] = {
            "state": self.state, "consecutiveFailures": self.consecutive_failures,
            "excludedUntil": self.excluded_until or None, "lastError": self.last_error,
            "inFlight": self.in_flight, "ttfbMs": self.ttfb_ms, "totalMs": self.total_ms,
            "models": list(self.models), "queueDepth": self.queue_depth, "tier": self.tier,
            "capacityError": self.capacity_error, "embeddingModels": list(self.embedding_models),
        }
        return entry

    @classmethod
    def from_wire(cls, entry: dict[str, Any]) -> PeerView:
        """Read a ``GET /peers`` item; a JS router's plain ``{pubkey,url,label?}`` reads as healthy.

        Raises:
            KeyError, TypeError: an item without ``pubkey`` or ``url``, or not an object.
        """
        health = entry.get("health") or {}
        return cls(
            entry["pubkey"], entry.get("label"), entry["url"], entry.get("source", "manual"),
            tuple(health.get("models") or ()), health.get("tier"), health.get("state", "healthy"),
            health.get("excludedUntil") or 0, health.get("consecutiveFailures", 0), health.get("queueDepth"),
            health.get("inFlight", 0), health.get("ttfbMs"), health.get("totalMs"), health.get("lastError"),
            health.get("capacityError"), entry.get("expiresAt"), tuple(health.get("embeddingModels") or ()),
        )


@dataclass(frozen=True)
class BatchView:
    """One batch of the router's Batch API: how far along it is, and who served it."""

    batch_id: str
    #: OpenAI's lifecycle: ``validating``, ``in_progress``, ``finalizing``, ``completed``, …
    status: str
    #: Requests answered, failed (error file), and in the batch.
    completed: int
    failed: int
    total: int
    #: Answered requests by the pubkey of the peer that answered them.
    items_per_peer: dict[str, int]
    #: Why it waits when it is paused, else ``None``.
    reason: str | None = None

    @classmethod
    def from_wire(cls, batch: dict[str, Any]) -> BatchView:
        """Read an OpenAI batch object, with this router's [ext] ``items_per_peer`` and
        ``paused_reason`` when present.

        Raises:
            KeyError, TypeError: not a batch object (no ``id``, ``status`` or ``request_counts``).
        """
        counts = batch["request_counts"]
        return cls(
            batch["id"], batch["status"], counts["completed"], counts["failed"], counts["total"],
            dict(batch.get("items_per_peer") or {}), batch.get("paused_reason"),
        )


@dataclass(frozen=True)
class NodeSnapshot:
    """The state of a node at one moment, for a dashboard to draw."""

    pubkey: str
    router_url: str | None
    worker_url: str | None
    tracker_url: str | None
    peers: tuple[PeerView, ...]
    worker_queue_depth: int | None
    balance: Balance | None
    recent: tuple[SignedReceipt, ...]
    #: Each switch: (on, a line about its last result).
    advertise: tuple[bool, str]
    sync: tuple[bool, str]
    #: Receipts refused so far, by reason.
    rejected: dict[str, int] = field(default_factory=dict)


class NodeView(Protocol):
    """What the dashboard needs of a node, wherever it runs."""

    #: Events as they happen (receipts, exclusions, capacity changes).
    bus: EventBus

    @property
    def pubkey(self) -> str:
        """The node's key (``lob1…``; known after ``start`` for a remote node)."""

    @property
    def router_url(self) -> str | None:
        """Where its OpenAI endpoint listens, without ``/v1``."""

    async def start(self) -> None:
        """Start (or connect). Raises OSError or LobstahError when it cannot."""

    async def stop(self) -> None:
        """Stop what ``start`` started."""

    async def snapshot(self, recent: int = 50) -> NodeSnapshot:
        """The node's state now, with its ``recent`` newest receipts (0: none, no ledger read)."""

    async def batches(self, limit: int = 20) -> tuple[BatchView, ...]:
        """The router's newest ``limit`` batches, newest first (none when it runs no router);
        what happens to them next comes as ``batch.*`` events on the bus."""

    async def set_advertise(self, on: bool) -> None:
        """Flip the advertise switch. Raises SwitchRefused with what to configure."""

    async def set_sync(self, on: bool) -> None:
        """Flip the sync switch. Raises SwitchRefused with what to configure."""

    def chat_stream(self, model: str, prompt: str) -> AsyncIterator[str]:
        """Send a test prompt through the node's router; yields the answer's text as it streams."""
        ...


async def chat_stream_text(lines: AsyncIterable[bytes | str]) -> AsyncIterator[str]:
    """The text of an OpenAI chat stream (SSE lines), piece by piece.

    Raises:
        LobstahError: the stream ends with an error event (a router that failed after
            committing the stream sends ``data: {"error": {…}}`` then ``[DONE]``).
    """
    async for raw in lines:
        line = (raw.decode() if isinstance(raw, bytes) else raw).strip()
        if not line.startswith("data: ") or line == "data: [DONE]":
            continue  # comments (keep-alive, receipts) and blank separators
        chunk = json.loads(line[6:])
        if "error" in chunk:
            raise LobstahError(chunk["error"].get("message") or "the stream failed")
        for choice in chunk.get("choices", []):
            text = (choice.get("delta") or {}).get("content")
            if text:
                yield text


def busiest_peers(items_per_peer: dict[str, int], labels: dict[str, str], shown: int) -> list[str]:
    """``["swift 120", "steady 64"]``: the ``shown`` peers that answered most of a batch's items
    (``BatchView.items_per_peer``), busiest first, by label when known (else a piece of the
    pubkey after ``lob1``)."""
    busiest = heapq.nlargest(shown, items_per_peer.items(), key=lambda item: item[1])
    return [f"{labels.get(peer, peer[4:12])} {count}" for peer, count in busiest]
