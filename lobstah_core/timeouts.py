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
from typing import TypeVar

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
        (:func:`first_byte` and :func:`idle_chunks`) instead."""
        return aiohttp.ClientTimeout(total=self.total_s, sock_connect=self.connect_s, sock_read=None)


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

    Raises:
        PhaseTimeout: phase ``idle``.
    """
    while True:
        try:
            async with asyncio.timeout(timeouts.idle_s):
                chunk = await read()
        except TimeoutError as exc:
            if isinstance(exc, PhaseTimeout):
                raise
            raise PhaseTimeout("idle", timeouts.idle_s) from None
        if not chunk:
            return
        yield chunk
