"""Ledger writes from the event loop, batched: one transaction per flush, off the loop.

Each caller awaits its own receipt's outcome, but while one batch is being written the next
accumulates, so under load many receipts share a transaction and the loop never blocks on
SQLite. Idle, a single receipt is written at once (no timer, no added latency).
"""

from __future__ import annotations

import asyncio

from .ledger import Ledger
from .protocol.receipts import SignedReceipt

__all__ = ["LedgerWriter"]


class LedgerWriter:
    """An asyncio front for :meth:`Ledger.add_verified`."""

    def __init__(self, ledger: Ledger) -> None:
        self.ledger = ledger
        self._pending: list[tuple[SignedReceipt, asyncio.Future[bool]]] = []
        self._flusher: asyncio.Task[None] | None = None

    async def add(self, signed: SignedReceipt) -> bool:
        """Store one receipt whose signature was already checked.

        Returns:
            ``True`` if added, ``False`` if its nonce was already in the ledger (a replay).
        """
        future: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self._pending.append((signed, future))
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.create_task(self._flush())
        return await future

    async def drain(self) -> None:
        """Wait until every receipt handed over so far is written."""
        while self._flusher is not None and not self._flusher.done():
            await asyncio.shield(self._flusher)

    async def _flush(self) -> None:
        while self._pending:
            batch, self._pending = self._pending, []
            try:
                added = await asyncio.to_thread(self.ledger.add_verified, [s for s, _ in batch])
            except Exception as exc:  # a broken ledger fails every waiter, not the writer
                for _, future in batch:
                    if not future.done():
                        future.set_exception(exc)
                continue
            for (_, future), outcome in zip(batch, added, strict=True):
                if not future.done():
                    future.set_result(outcome)
