"""Timeouts by phase of one HTTP exchange with a peer or an upstream engine.

One number cannot stand for all of them: a generation may rightly take minutes in total while
a healthy stream never goes quiet for long, and a stopped process accepts connections but never
answers. So each phase has its own limit (issue "Request path", item 4):

- ``connect_s``: to open the TCP connection;
- ``first_byte_s``: from sending the request to the status line (a worker sends it once its
  engine accepted the request; for a plain answer, once the answer is ready);
- ``idle_s``: between two pieces of the body;
- ``total_s``: the whole exchange, ``None`` for no limit (the default: a long, steady stream is
  healthy).
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, TypeVar

if TYPE_CHECKING:
    import aiohttp

__all__ = ["Timeouts", "PhaseTimeout", "first_byte", "idle_chunks"]

T = TypeVar("T")


@dataclass(frozen=True)
class Timeouts:
    """Limits in seconds for each phase of an exchange (``None`` total: no overall limit)."""

    connect_s: float = 5.0
    first_byte_s: float = 120.0
    idle_s: float = 60.0
    total_s: float | None = None

    def __post_init__(self) -> None:
        for name in ("connect_s", "first_byte_s", "idle_s"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be a positive number of seconds")
        if self.total_s is not None and not self.total_s > 0:
            raise ValueError("total_s must be a positive number of seconds, or None")

    @property
    def total(self) -> float:
        """The overall limit as aiohttp's ``ClientTimeout.total`` reads (``inf``: none)."""
        return math.inf if self.total_s is None else self.total_s

    @property
    def sock_read(self) -> float:
        """The idle limit under aiohttp's name for it."""
        return self.idle_s

    def client_timeout(self) -> aiohttp.ClientTimeout:
        """aiohttp's part: connect and total. aiohttp has one read limit for the status line
        and the body alike, so the first-byte and idle limits are kept by the reader
        (:func:`first_byte` and :func:`idle_chunks`) instead. Made once per ``Timeouts``
        (the router asks for it on every call)."""
        made = self.__dict__.get("_client_timeout")
        if made is None:
            # Imported here: what only reads these limits (the ledger's verifier processes
            # import this module through ``config``) need not import aiohttp: it was half of
            # the instructions a verifier process spent starting (callgrind: 1.82 G, 0.97 G).
            import aiohttp

            made = aiohttp.ClientTimeout(total=self.total_s, sock_connect=self.connect_s, sock_read=None)
            object.__setattr__(self, "_client_timeout", made)  # frozen: a cache, not a field
        return made


class PhaseTimeout(asyncio.TimeoutError):
    """A phase ran out of time; ``phase`` is ``connect``, ``first byte``, ``idle`` or ``total``."""

    def __init__(self, phase: str, seconds: float) -> None:
        super().__init__(f"no {phase} within {seconds:g} s" if phase != "idle" else f"silent for {seconds:g} s mid-answer")
        self.phase, self.seconds = phase, seconds


async def first_byte(request: Awaitable[T], timeouts: Timeouts) -> T:
    """Await ``request`` (an HTTP call returning once the status line is in) within
    ``first_byte_s``.

    Raises:
        PhaseTimeout: phase ``first byte``.
    """
    try:
        async with asyncio.timeout(timeouts.first_byte_s):
            return await request
    except TimeoutError as exc:
        if isinstance(exc, PhaseTimeout):
            raise
        raise PhaseTimeout("first byte", timeouts.first_byte_s) from None


async def idle_chunks(read: Callable[[], Awaitable[bytes]], timeouts: Timeouts) -> AsyncIterator[bytes]:
    """The pieces ``read()`` returns until it returns ``b""``, each within ``idle_s``.

    Only the time spent waiting in ``read()`` counts: the consumer may take as long as it
    likes between pieces (writing to a slow client, say).

    Raises:
        PhaseTimeout: phase ``idle``.
    """
    watch = _IdleWatch(timeouts.idle_s)
    try:
        while True:
            watch.reading()
            try:
                chunk = await read()
            except asyncio.CancelledError:
                if watch.expired and watch.task.uncancel() <= watch.cancelling:
                    raise PhaseTimeout("idle", timeouts.idle_s) from None
                raise
            finally:
                watch.pending = False
            if not chunk:
                return
            yield chunk
    finally:
        watch.close()


class _IdleWatch:
    """Cancels the current task once one read has been pending for ``idle_s``.

    One timer for the whole body, re-armed lazily when it fires early, in place of an
    ``asyncio.timeout`` scope per piece: a stream has a piece per token, and each scope costs a
    timer, a context manager and a reschedule (five to seven of them per request on the
    router's hot path, by cProfile call counts).
    """

    __slots__ = ("loop", "task", "cancelling", "idle_s", "deadline", "pending", "expired", "_timer")

    def __init__(self, idle_s: float) -> None:
        self.loop = asyncio.get_running_loop()
        task = asyncio.current_task()
        assert task is not None, "idle_chunks must be iterated inside a task"
        self.task, self.cancelling = task, task.cancelling()
        self.idle_s, self.deadline = idle_s, 0.0
        self.pending = self.expired = False
        self._timer: asyncio.TimerHandle | None = None

    def reading(self) -> None:
        """A read begins now: it has ``idle_s`` from here."""
        self.deadline = self.loop.time() + self.idle_s
        self.pending = True
        if self._timer is None:
            self._timer = self.loop.call_at(self.deadline, self._check)

    def _check(self) -> None:
        self._timer = None
        if not self.pending:
            return  # between reads: the next read arms the timer again
        if self.loop.time() >= self.deadline - 0.001:  # call_at may fire a hair early
            self.expired = True
            self.task.cancel()
        else:
            self._timer = self.loop.call_at(self.deadline, self._check)

    def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
