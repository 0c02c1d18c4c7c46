"""The worker's shared state and the steps every request goes through.

Authenticate the requester, check its credit, hold an engine slot, run the engine, sign a
receipt for the tokens used and append it to the worker's own ledger. The HTTP handlers
(``app.py``) and the job runner (``jobs.py``) are thin layers over these steps.

Durable before delivered (issue 15): a receipt is committed to the worker's ledger before the
bytes that carry it leave, so a worker killed at any moment never has handed out a receipt it
has not kept. Commits are grouped: a handler waits for the transaction of its batch, and a batch
is whatever was issued while the previous one was being written (one transaction in a thread),
so under load one SQLite commit serves many requests. In WAL mode with ``synchronous=NORMAL`` a
commit survives the process being killed (not a power cut). Until stored, issued receipts count
against their requesters' credit from a tally in memory.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from ..batches import Batches
from ..clock import wall_clock_ms
from ..config import WorkerSettings
from ..engines.base import EmbeddingEngine, Usage, WorkerEngine
from ..errors import (
    EngineError,
    InsufficientCredit,
    LedgerError,
    ModelNotFound,
    ProtocolError,
    Unauthorized,
)
from ..events import EventBus, ReceiptIssued
from ..ledger import Ledger
from ..protocol.identity import Identity, is_pubkey
from ..protocol.model_names import lists_model
from ..protocol.receipts import Receipt, SignedReceipt, new_nonce, sign_receipt
from ..protocol.request_signing import ANONYMOUS, REQUESTER_HEADER, verify_request
from ..protocol.schemas import Capacity
from .admission import Admission

__all__ = ["WorkerService"]

#: How long the engine's model list is trusted before asking it again.
MODELS_TTL_S = 10.0


@dataclass
class WorkerService:
    """Everything a worker's handlers share."""

    identity: Identity
    engine: WorkerEngine
    ledger: Ledger
    settings: WorkerSettings
    clock_ms: Callable[[], int] = wall_clock_ms
    #: Where issued receipts are announced (a node's shared bus), if anywhere.
    bus: EventBus | None = None
    #: Seconds an issued receipt waits for others to share its ledger transaction, on top of
    #: the time the batch before takes to commit (which is when most join).
    batch_window: float = 0.0
    admission: Admission = field(init=False)
    #: When this service started, ms since the epoch (the ``created`` of its models).
    started_at_ms: int = field(init=False)
    issued: Batches[SignedReceipt] = field(init=False)
    #: Credit each requester spent in receipts issued but not yet in the ledger.
    _unstored: Counter[str] = field(default_factory=Counter, init=False)
    _models: list[str] = field(default_factory=list, init=False)
    _embedding_models: list[str] | None = field(default=None, init=False)
    _models_at: float = field(default=float("-inf"), init=False)

    def __post_init__(self) -> None:
        self.started_at_ms = self.clock_ms()
        # An engine that runs fewer calls at once (llama.cpp in-process: one) caps the slots, so
        # the requests it cannot run yet wait here, counted in queue_depth, not inside it.
        concurrency = min(self.settings.concurrency, getattr(self.engine, "max_concurrency", self.settings.concurrency))
        self.admission = Admission(concurrency, self.settings.max_queue)
        self.issued = Batches(self._store_issued, window=self.batch_window, what="issued receipts")

    def authenticate(
        self, headers: Mapping[str, str], method: str, path: str, body: bytes, *, signed_only: bool = False
    ) -> str:
        """The requester of a request: verified if signed, claimed if not, else anonymous.

        Args:
            signed_only: refuse an unsigned request whatever the settings say (a requester's
                own receipts are served only to that requester, proven).

        Raises:
            Unauthorized: a signature that does not verify, or none when one is required; a
                claimed requester that is not a public key (nor ``anonymous``).
        """
        try:
            verified = verify_request(headers, method, path, body, self.clock_ms())
        except ProtocolError as exc:
            raise Unauthorized(f"bad request signature: {exc.message}") from None
        if verified is not None:
            return verified
        if self.settings.require_signed_requests or signed_only:
            raise Unauthorized("this needs a signed request (x-lobstah-signature)")
        claimed = headers.get(REQUESTER_HEADER) or ANONYMOUS
        if claimed != ANONYMOUS and not is_pubkey(claimed):
            raise Unauthorized(f"{REQUESTER_HEADER} must be a lob1… public key")
        return claimed

    async def check_credit(self, requester: str) -> None:
        """Refuse a requester whose available credit in our ledger is used up.

        Raises:
            InsufficientCredit: with the ``available`` figure.
        """
        if not self.settings.check_credit:
            return
        # Receipts of the batch being stored leave the tally once they are in the ledger, maybe
        # while we read it: the larger tally seen counts them at least once.
        unstored = self._unstored[requester]
        available = await asyncio.to_thread(self.ledger.available_credit, requester)
        available -= max(unstored, self._unstored[requester])
        if available <= 0:
            raise InsufficientCredit(
                f"requester {requester[:16]}… has no credit left here (available {available})",
                available=available,
            )

    async def models(self) -> list[str]:
        """The engine's models, cached for a few seconds (capacity polls must stay cheap).

        Raises:
            EngineError: the engine cannot be reached and nothing is cached.
        """
        now = time.monotonic()
        if now - self._models_at > MODELS_TTL_S:
            try:
                offered = await self.engine.models()
                wanted = self.settings.models
                self._models = [m for m in offered if wanted is None or lists_model(wanted, m)]
                if isinstance(self.engine, EmbeddingEngine):
                    embedding = set(await self.engine.embedding_models())
                    self._embedding_models = [m for m in self._models if m in embedding]
                self._models_at = now
            except EngineError:
                if not self._models:
                    raise
        return self._models

    async def require_model(self, model: str) -> None:
        """Raises ModelNotFound unless the engine serves ``model``."""
        models = await self.models()
        if not lists_model(models, model):
            # The cache may predate a model pulled a moment ago: ask once more.
            self._models_at = float("-inf")
            if not lists_model(await self.models(), model):
                raise ModelNotFound(
                    f"model {model!r} is not served here (available: {', '.join(models) or 'none'})",
                    model=model,
                )

    async def capacity(self, job_counts: object | None = None) -> Capacity:
        try:
            models = await self.models()
        except EngineError:
            models = []
        # [ext] embeddingModels only when the engine embeds: to_wire() leaves unset fields out.
        embedding = {} if self._embedding_models is None else {"embedding_models": self._embedding_models}
        return Capacity(
            pubkey=self.identity.pubkey,
            models=models,
            queue_depth=self.admission.queue_depth,
            tier=self.settings.tier,
            concurrency=self.admission.concurrency,
            job_counts=job_counts,
            **embedding,
        )

    def sign_receipt(
        self, job_id: str, requester: str, model: str, usage: Usage, started_at: int
    ) -> SignedReceipt:
        """Sign the receipt for one completion (record it once the requester has it)."""
        receipt = Receipt(
            version=1,
            job_id=job_id,
            nonce=new_nonce(),
            requester_pubkey=requester,
            worker_pubkey=self.identity.pubkey,
            model=model,
            input_tokens=usage.prompt_tokens,
            output_tokens=usage.completion_tokens,
            started_at=started_at,
            completed_at=self.clock_ms(),
        )
        return sign_receipt(receipt, self.identity)

    async def commit_receipt(self, signed: SignedReceipt) -> None:
        """Append a receipt we issued (and so need not verify) to our ledger, with its batch,
        and return once that batch is committed; it is announced once stored. Call it before
        anything that carries the receipt is sent; its credit counts against the requester
        from now on.

        Raises:
            LedgerError: the ledger could not store the batch; the receipt must not be sent.
        """
        self._tally(signed, +1)
        try:
            await self.issued.commit(signed)
        except Exception as exc:
            raise LedgerError(f"could not store the receipt: {exc}") from None

    def _tally(self, signed: SignedReceipt, sign: int) -> None:
        """Add (+1) or take out (-1) a receipt's credit in the tally of unstored spending."""
        receipt = signed.receipt
        if receipt.requester_pubkey != receipt.worker_pubkey:  # our own requests cost us nothing
            self._unstored[receipt.requester_pubkey] += sign * receipt.credit

    async def _store_issued(self, batch: list[SignedReceipt]) -> None:
        try:
            await asyncio.to_thread(self.ledger.add_verified, batch)
        finally:  # stored, or lost with the batch: either way no longer pending
            for signed in batch:
                self._tally(signed, -1)
            self._unstored = +self._unstored  # drop the requesters at zero
        if self.bus is None:
            return
        for signed in batch:
            receipt = signed.receipt
            self.bus.publish(ReceiptIssued(receipt.completed_at, receipt.requester_pubkey, receipt.model,
                                           receipt.input_tokens, receipt.output_tokens, receipt.nonce))
