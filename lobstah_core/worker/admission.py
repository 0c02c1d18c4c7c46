"""Backpressure: at most ``concurrency`` engine calls at once, at most ``max_queue`` waiting.

A request that would wait behind a full queue is refused at once (429 ``overloaded`` with
``Retry-After``) instead of piling up; ``queue_depth`` (waiting + running) is the real figure
``GET /capacity`` reports.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from ..errors import Overloaded

__all__ = ["Admission"]


class Admission:
    """A semaphore with a bounded, observable waiting line."""

    def __init__(self, concurrency: int, max_queue: int) -> None:
        if concurrency < 1 or max_queue < 0:
            raise ValueError("concurrency must be >= 1 and max_queue >= 0")
        self.concurrency = concurrency
        self.max_queue = max_queue
        self._slots = asyncio.Semaphore(concurrency)
        self.running = 0
        self.waiting = 0

    @property
    def queue_depth(self) -> int:
        """Requests waiting plus running right now."""
        return self.waiting + self.running

    async def acquire(self, *, wait: bool = False) -> None:
        """Take one engine slot, waiting in line for it.

        Args:
            wait: queue even when the line is full (background jobs, which are bounded by
                their own store); requests from clients pass ``False`` and may be refused.

        Raises:
            Overloaded: every slot is busy and the waiting line is full.
        """
        if not wait and self._slots.locked() and self.waiting >= self.max_queue:
            raise Overloaded(
                f"worker is busy: {self.running} running, {self.waiting} queued",
                retry_after=1 + self.waiting // self.concurrency,
            )
        self.waiting += 1
        try:
            await self._slots.acquire()
        finally:
            self.waiting -= 1
        self.running += 1

    def release(self) -> None:
        """Give back a slot taken with :meth:`acquire`."""
        self.running -= 1
        self._slots.release()

    @asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        """Hold one engine slot for the body of the ``async with`` (may raise Overloaded)."""
        await self.acquire()
        try:
            yield
        finally:
            self.release()
