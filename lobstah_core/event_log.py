"""One readable line per event, for ``serve`` logs and the demo."""

from __future__ import annotations

import time
from collections.abc import Mapping

from .events import (
    BatchProgressed,
    BatchStatusChanged,
    CapacityChanged,
    Event,
    PeerExcluded,
    PeerFailed,
    PeerReadmitted,
    ReceiptAccepted,
    ReceiptIssued,
    ReceiptRejected,
    ReceiptsRecovered,
)

__all__ = ["describe"]


def describe(event: Event, labels: Mapping[str, str] | None = None) -> str:
    """``HH:MM:SS  <what happened>``, peers named by ``labels`` where known."""
    names = labels or {}
    clock = time.strftime("%H:%M:%S", time.localtime(event.at / 1000))
    peer = getattr(event, "peer", "") or getattr(event, "requester", "")
    name = names.get(peer, peer[:12])
    if isinstance(event, ReceiptAccepted):
        credit = event.input_tokens + event.output_tokens
        return f"{clock}  → spent     {name:<8} {event.model:<11} {event.input_tokens:>3} in {event.output_tokens:>3} out  ({credit} credits)"
    if isinstance(event, ReceiptIssued):
        credit = event.input_tokens + event.output_tokens
        return f"{clock}  ← earned    {name:<8} {event.model:<11} {event.input_tokens:>3} in {event.output_tokens:>3} out  ({credit} credits)"
    if isinstance(event, ReceiptRejected):
        return f"{clock}  ! rejected  {name:<8} receipt refused: {event.reason} ({event.message})"
    if isinstance(event, ReceiptsRecovered):
        return f"{clock}  ↺ recovered {name:<8} {event.count} receipt(s) by reconciliation"
    if isinstance(event, PeerFailed):
        return f"{clock}  ✗ failed    {name:<8} {event.message} ({event.consecutive_failures} in a row)"
    if isinstance(event, PeerExcluded):
        seconds = round((event.excluded_until - event.at) / 1000)
        return f"{clock}  ⊘ excluded  {name:<8} for {seconds} s"
    if isinstance(event, PeerReadmitted):
        return f"{clock}  ✓ readmitted {name}"
    if isinstance(event, CapacityChanged):
        return f"{clock}  · capacity  {name:<8} {event.tier}, queue {event.queue_depth}, models {', '.join(event.models)}"
    if isinstance(event, BatchStatusChanged):
        why = f" ({event.reason})" if event.reason else ""
        return f"{clock}  ▤ batch     {event.batch_id} {event.status}, {_batch_counts(event)}{why}"
    if isinstance(event, BatchProgressed):
        by = f" by {name} ({event.peer_completed} so far)" if event.peer else ""
        return f"{clock}  ▤ progress  {event.batch_id} {_batch_counts(event)}{by}"
    return f"{clock}  {event.kind}"


def _batch_counts(event: BatchStatusChanged | BatchProgressed) -> str:
    failed = f", {event.failed} failed" if event.failed else ""
    return f"{event.completed}/{event.total} done{failed}"
