"""Accepting receipts from workers: every rule of WIRE.md, the [ext] ones included.

A receipt enters the ledger only if it is well formed (every number bounded), its signature
verifies, it is addressed to us, it was signed by the peer we actually called, it claims no
more tokens than the usage the worker reported in the same answer, its ``completedAt`` is
within 5 minutes of now, and its nonce is new (the ledger's primary key, so the check survives
restarts). Every outcome is published; rejections are also counted per reason. Receipts are
judged one by one: a poison one in a batch is rejected with its reason, its neighbours are not.

A client never waits for any of this: its answer has gone out before. Receipts are handled in
batches: the first to arrive opens a short window (``batch_window``, 20 ms) in which the next
ones join it; then the batch is verified on the event loop, one receipt per turn of the loop
(each costs ~0.1 ms, mostly Ed25519), and stored in one ledger transaction in a thread, so the
loop never waits on SQLite. Batches follow one another: the desk is its ledger's only writer.
Verifying in that thread as well measured no better in ``bench/router.py``: the loop then waits
for the GIL, held by the verifier between Ed25519 calls, on every request instead.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..batches import Batches
from ..engines.base import Usage
from ..errors import InvalidSignature, ProtocolError, StaleMessage
from ..events import EventBus, ReceiptAccepted, ReceiptRejected
from ..ledger import Ledger
from ..protocol.receipts import (
    SignedReceipt,
    check_receipt_addressed,
    check_receipt_fresh,
    decode_receipt_header,
    verify_receipt,
)

__all__ = ["ReceiptDesk", "Rejection", "check_receipt"]

#: What a worker hands over: an ``x-lobstah-receipt`` header or SSE comment value (base64), a
#: signed receipt as JSON data (a finished job), or nothing at all.
Submitted = str | dict[str, Any] | SignedReceipt | None


@dataclass(frozen=True)
class Rejection:
    """Why a receipt was refused: ``reason`` is the counted word (``missing``, ``malformed``,
    ``bad_signature``, ``wrong_requester``, ``wrong_worker``, ``inflated``, ``stale``,
    ``replayed``), ``message`` the readable line."""

    reason: str
    message: str


def check_receipt(
    value: Submitted, requester: str, peer: str, now_ms: int | None, usage: Usage | None = None
) -> SignedReceipt | Rejection:
    """Every rule but nonce uniqueness (that one needs the ledger), for one receipt.

    Args:
        value: what the worker ``peer`` handed over for a request of ``requester`` (us).
        now_ms: the clock ``completedAt`` is compared with; ``None`` skips freshness (receipts
            we asked a worker for while reconciling, WIRE.md "[ext] reconciliation").
        usage: the tokens the worker reported in the same answer, when the client saw them;
            a receipt claiming more, on either side, is ``inflated`` (WIRE.md "[ext] bounds").
    """
    if value is None:
        return Rejection("missing", "the worker sent no receipt")
    try:
        body = decode_receipt_header(value) if isinstance(value, str) else value
        signed = verify_receipt(body)
        check_receipt_addressed(signed.receipt, requester, peer)
        if now_ms is not None:
            check_receipt_fresh(signed.receipt, now_ms)
    except StaleMessage as exc:
        return Rejection("stale", exc.message)
    except InvalidSignature as exc:
        return Rejection(exc.details.get("reason", "bad_signature"), exc.message)
    except ProtocolError as exc:
        return Rejection("malformed", exc.message)
    receipt = signed.receipt
    if usage is not None and (
        receipt.input_tokens > usage.prompt_tokens or receipt.output_tokens > usage.completion_tokens
    ):
        return Rejection(
            "inflated",
            f"receipt claims {receipt.input_tokens}+{receipt.output_tokens} tokens, "
            f"the answer reported {usage.prompt_tokens}+{usage.completion_tokens}",
        )
    return signed


class ReceiptDesk:
    """Checks and records the receipts of one router."""

    def __init__(
        self,
        pubkey: str,
        ledger: Ledger,
        bus: EventBus,
        clock_ms: Callable[[], int],
        *,
        batch_window: float = 0.02,
    ) -> None:
        self.pubkey = pubkey
        self._ledger = ledger
        self._bus = bus
        self._clock_ms = clock_ms
        #: Rejected receipts by reason.
        self.rejected: Counter[str] = Counter()
        self.accepted = 0
        #: Every peer whose answers came through this desk since start: the peers used.
        self.peers: set[str] = set()
        self._batches: Batches[tuple[Submitted, str, Usage | None, bool]] = Batches(
            self._settle, window=batch_window, what="received receipts"
        )

    def accept_later(self, value: Submitted, peer: str, usage: Usage | None = None, *, fresh: bool = True) -> None:
        """Take what the worker ``peer`` handed over as its receipt; it is checked and stored
        with the next batch, and the outcome published.

        Args:
            value: the ``x-lobstah-receipt`` header or SSE comment value, a signed receipt as
                JSON data, or ``None`` when the worker sent none.
            peer: the pubkey of the worker actually called.
            usage: prompt/completion tokens of the same answer as the client saw them (the
                completion's ``usage``, or a stream's usage chunk); when given, a receipt that
                claims more is refused as ``inflated``.
            fresh: check that it was signed lately (WIRE.md's freshness window). ``False`` for
                the receipt of a job we submitted and fetched later: the job map vouches that
                we asked for it, as a pull does in reconciliation, and its nonce is still checked.
        """
        self._batches.add((value, peer, usage, fresh))

    async def recover(self, served: list[Any], peer: str) -> int:
        """Ledger the receipts ``peer`` served when we asked for ours (WIRE.md "[ext]
        reconciliation") that we lack: every check but freshness, one receipt at a time.

        Known nonces are skipped quietly (pages overlap, and most were ledgered as they came);
        refusals are counted and published like any other.

        Returns:
            How many receipts entered the ledger.
        """
        nonces = {index: nonce for index, item in enumerate(served) if (nonce := _nonce_of(item)) is not None}
        known = await asyncio.to_thread(self._ledger.known_nonces, list(nonces.values()))
        checked: list[SignedReceipt | Rejection] = []
        for index, item in enumerate(served):
            if nonces.get(index) not in known:
                checked.append(check_receipt(item, self.pubkey, peer, None))
                await asyncio.sleep(0)  # as in _settle: requests keep flowing meanwhile
        good = [result for result in checked if isinstance(result, SignedReceipt)]
        added = iter(await asyncio.to_thread(self._ledger.add_verified, good))
        recovered = 0
        for result in checked:
            if isinstance(result, SignedReceipt) and not next(added):
                continue  # ledgered meanwhile, as it arrived with its answer
            self._record(peer, result)
            recovered += isinstance(result, SignedReceipt)
        return recovered

    async def drain(self) -> None:
        """Wait for receipts still being checked (on shutdown, and in tests)."""
        await self._batches.drain()

    async def _settle(self, batch: list[tuple[Submitted, str, Usage | None, bool]]) -> None:
        checked: list[SignedReceipt | Rejection] = []
        for value, peer, usage, fresh in batch:
            checked.append(check_receipt(value, self.pubkey, peer, self._clock_ms() if fresh else None, usage))
            # Requests keep flowing between two receipts. Eight at a time blocked the loop for
            # ~0.7 ms, which left the workers and clients idle: c=32 throughput was ~7% lower.
            await asyncio.sleep(0)
        good = [result for result in checked if isinstance(result, SignedReceipt)]
        added = iter(await asyncio.to_thread(self._ledger.add_verified, good))
        for (_, peer, _, _), result in zip(batch, checked, strict=True):
            if isinstance(result, SignedReceipt) and not next(added):
                # A node whose router calls its own worker shares one home, one key and one
                # ledger: the worker has stored this receipt already. Our own replay is none.
                if result.receipt.worker_pubkey != self.pubkey:
                    result = Rejection("replayed", f"nonce {result.receipt.nonce} was already used")
            self._record(peer, result)

    def _record(self, peer: str, result: SignedReceipt | Rejection) -> None:
        self.peers.add(peer)
        if isinstance(result, Rejection):
            self.rejected[result.reason] += 1
            self._bus.publish(ReceiptRejected(self._clock_ms(), peer, result.reason, result.message))
            return
        receipt = result.receipt
        self.accepted += 1
        self._bus.publish(
            ReceiptAccepted(
                self._clock_ms(), peer, receipt.model, receipt.input_tokens, receipt.output_tokens, receipt.nonce
            )
        )


def _nonce_of(item: Any) -> str | None:
    """The nonce a served signed receipt claims, if it has the shape to claim one."""
    receipt = item.get("receipt") if isinstance(item, dict) else None
    nonce = receipt.get("nonce") if isinstance(receipt, dict) else None
    return nonce if isinstance(nonce, str) else None
