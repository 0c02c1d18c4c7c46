"""Work handed over from request handlers and settled in batches, by one task.

Receipts are the case: under load one transaction per batch costs far less than one per receipt
(plus a thread hop each). The first item opens a short window in which the next ones join it;
then the batch is settled. Batches follow one another, so whoever settles them is their store's
only writer, and whatever arrives while one batch is being written joins the next.

A handler either hands an item over and moves on (:meth:`Batches.add`), or waits until the
batch holding its item is settled (:meth:`Batches.commit`): group commit, as databases do it.
The waiting handlers of one batch share its single write.
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
        #: Resolved once the waiting batch is settled: ``None``, or the exception that lost it.
        self._outcome: asyncio.Future[BaseException | None] | None = None
        self._task: asyncio.Task[None] | None = None

    def add(self, item: T) -> asyncio.Future[BaseException | None]:
        """Hand one item over; it is settled with the next batch.

        Returns:
            The outcome of that batch: resolves to ``None`` once settled, or to the exception
            that lost it (a value, never raised, so nobody has to look at it).
        """
        self._waiting.append(item)
        if self._outcome is None:
            self._outcome = asyncio.get_running_loop().create_future()
        outcome = self._outcome
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._run())
        return outcome

    async def commit(self, item: T) -> None:
        """Hand one item over and wait until its batch is settled.

        Raises:
            Exception: whatever lost the batch (from ``settle``).
        """
        # Shielded: the outcome is shared by every item of the batch, and one handler being
        # cancelled (its client hung up) must not cancel it for the others.
        error = await asyncio.shield(self.add(item))
        if error is not None:
            raise error

    async def drain(self) -> None:
        """Wait until every item handed over so far is settled (on shutdown, and in tests)."""
        while self._task is not None and not self._task.done():
            await asyncio.shield(self._task)

    async def _run(self) -> None:
        while self._waiting:
            await asyncio.sleep(self.window)
            batch, self._waiting = self._waiting, []
            outcome, self._outcome = self._outcome, None
            error: BaseException | None = None
            try:
                await self._settle(batch)
            except Exception as exc:  # a broken store loses this batch, not the ones after it
                log.exception("could not settle %d %s", len(batch), self._what)
                error = exc
            if outcome is not None:
                outcome.set_result(error)
