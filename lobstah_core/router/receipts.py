"""Accepting receipts from workers: every rule of WIRE.md, the [ext] ones included.

A receipt enters the ledger only if its signature verifies, it is addressed to us, it was
signed by the peer we actually called, its ``completedAt`` is within 5 minutes of now, and its
nonce is new (the ledger's primary key, so the check survives restarts). Every outcome is
published; rejections are also counted per reason.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Callable
from typing import Any

from ..errors import InvalidSignature, MalformedMessage, ProtocolError, StaleMessage
from ..events import EventBus, ReceiptAccepted, ReceiptRejected
from ..ledger_writer import LedgerWriter
from ..protocol.receipts import (
    SignedReceipt,
    check_receipt_addressed,
    check_receipt_fresh,
    decode_receipt_header,
    verify_receipt,
)

__all__ = ["ReceiptDesk"]


class ReceiptDesk:
    """Checks and records the receipts of one router."""

    def __init__(self, pubkey: str, writer: LedgerWriter, bus: EventBus, clock_ms: Callable[[], int]) -> None:
        self.pubkey = pubkey
        self._writer = writer
        self._bus = bus
        self._clock_ms = clock_ms
        #: Rejected receipts by reason.
        self.rejected: Counter[str] = Counter()
        self.accepted = 0
        self._pending: set[asyncio.Task[SignedReceipt | None]] = set()

    def accept_later(self, value: str | None, peer: str) -> None:
        """Accept a receipt header in the background (the client need not wait for it)."""
        task = asyncio.create_task(self.accept_header(value, peer))
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    async def drain(self) -> None:
        """Wait for receipts still being checked (on shutdown, and in tests)."""
        while self._pending:
            await asyncio.gather(*list(self._pending), return_exceptions=True)

    async def accept_header(self, value: str | None, peer: str) -> SignedReceipt | None:
        """Accept the receipt of an ``x-lobstah-receipt`` header or SSE comment value."""
        if value is None:
            return self._reject(peer, "missing", "the worker sent no receipt")
        try:
            body = decode_receipt_header(value)
        except MalformedMessage as exc:
            return self._reject(peer, "malformed", exc.message)
        return await self.accept(body, peer)

    async def accept(self, body: SignedReceipt | dict[str, Any], peer: str) -> SignedReceipt | None:
        """Check one signed receipt from the worker ``peer`` and store it.

        Returns:
            The receipt if accepted, ``None`` if rejected (the reason is published).
        """
        try:
            signed = verify_receipt(body)
            check_receipt_addressed(signed.receipt, self.pubkey, peer)
            check_receipt_fresh(signed.receipt, self._clock_ms())
        except StaleMessage as exc:
            return self._reject(peer, "stale", exc.message)
        except InvalidSignature as exc:
            return self._reject(peer, exc.details.get("reason", "bad_signature"), exc.message)
        except ProtocolError as exc:
            return self._reject(peer, "malformed", exc.message)
        added = await self._writer.add(signed)
        # A node whose router calls its own worker shares one home, one key and one ledger:
        # the worker has stored this receipt already. A replay by ourselves is no replay.
        if not added and signed.receipt.worker_pubkey != self.pubkey:
            return self._reject(peer, "replayed", f"nonce {signed.receipt.nonce} was already used")
        receipt = signed.receipt
        self.accepted += 1
        self._bus.publish(
            ReceiptAccepted(self._clock_ms(), peer, receipt.model, receipt.input_tokens, receipt.output_tokens, receipt.nonce)
        )
        return signed

    def _reject(self, peer: str, reason: str, message: str) -> None:
        self.rejected[reason] += 1
        self._bus.publish(ReceiptRejected(self._clock_ms(), peer, reason, message))
        return None
