"""Work handed over from request handlers and settled later, in batches, by one task.

Receipts are the case: a handler's client must not wait for a ledger write, and under load one
transaction per batch costs far less than one per receipt (plus a thread hop each). The first
item opens a short window in which the next ones join it; then the batch is settled. Batches
follow one another, so whoever settles them is their store's only writer.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

__all__ = ["Batches"]

log = logging.getLogger("lobstah")
T = TypeVar("T")


class Batches(Generic[T]):
    """Items gathered for ``window`` seconds, then handed to ``settle`` together."""

    def __init__(
        self, settle: Callable[[list[T]], Awaitable[None]], *, window: float, what: str
    ) -> None:
        """
        Args:
            settle: stores (and publishes) one batch; an exception loses that batch only.
            window: seconds the first item of a batch waits for others to join it.
            what: what the items are, for the log line when a batch is lost.
        """
        self._settle = settle
        self.window = window
        self._what = what
        self._waiting: list[T] = []
        self._task: asyncio.Task[None] | None = None

    def add(self, item: T) -> None:
        """Hand one item over; it is settled with the next batch."""
        self._waiting.append(item)
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._run())

    async def drain(self) -> None:
        """Wait until every item handed over so far is settled (on shutdown, and in tests)."""
        while self._task is not None and not self._task.done():
            await asyncio.shield(self._task)

    async def _run(self) -> None:
        while self._waiting:
            await asyncio.sleep(self.window)
            batch, self._waiting = self._waiting, []
            try:
                await self._settle(batch)
            except Exception:  # a broken store loses this batch, not the ones after it
                log.exception("could not settle %d %s", len(batch), self._what)
