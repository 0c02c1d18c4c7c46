"""The peer transport seam: how the router talks HTTP to a worker.

Routing, failover and receipt checks work against :class:`PeerTransport`; the aiohttp
implementation below is the real one (one pooled session for every peer), and
:class:`~lobstah_core.router.memory.MemoryTransport` an in-memory one for socket-free tests.

Every request has its :class:`~lobstah_core.timeouts.Timeouts`: connect, first byte (the
status line), idle between body pieces, and an optional total. Running out of any of them, or a
refused or broken connection, is :class:`PeerUnreachable` (a peer failure in WIRE.md "[ext] who
is to blame").
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping
from typing import Protocol

import aiohttp

from ..errors import LobstahError
from ..timeouts import PhaseTimeout, Timeouts, first_byte, idle_chunks
from .peers import Peer

__all__ = ["PeerTransport", "PeerReply", "PeerUnreachable", "AiohttpTransport"]


class PeerUnreachable(LobstahError):
    """The peer could not be reached, or stopped answering (connection, timeout)."""

    type = "peer_unreachable"
    status = 502


class PeerReply(Protocol):
    """A peer's answer whose status line and headers are in; the body is read on demand."""

    status: int
    headers: Mapping[str, str]

    async def read(self) -> bytes:
        """The whole body (each piece within the idle limit).

        Raises:
            PeerUnreachable: the connection broke or went quiet.
        """
        ...

    def chunks(self) -> AsyncIterator[bytes]:
        """The body in pieces as they arrive off the wire (each within the idle limit).

        Raises:
            PeerUnreachable: the connection broke or went quiet.
        """
        ...

    def release(self) -> None:
        """Give the connection back (or close it if the body was not read to its end)."""
        ...


class PeerTransport(Protocol):
    async def request(
        self,
        peer: Peer,
        method: str,
        path: str,
        body: bytes | None = None,
        headers: Mapping[str, str] | None = None,
        timeouts: Timeouts | None = None,
    ) -> PeerReply:
        """Send a request; returns once the status line and headers are in.

        Args:
            timeouts: the limits of this exchange (default: the transport's own).

        Raises:
            PeerUnreachable: connection refused or reset, or no status line within
                ``timeouts.first_byte_s``.
        """
        ...

    async def aclose(self) -> None: ...


class _AiohttpReply:
    def __init__(self, response: aiohttp.ClientResponse, timeouts: Timeouts) -> None:
        self._response = response
        self._timeouts = timeouts
        self.status = response.status
        self.headers = response.headers

    async def read(self) -> bytes:
        if self._response.content.is_eof():  # all of it is in already (a short answer)
            return self._response.content.read_nowait(-1)
        return b"".join([chunk async for chunk in self.chunks()])

    async def chunks(self) -> AsyncIterator[bytes]:
        try:
            async for chunk in idle_chunks(self._response.content.readany, self._timeouts):
                yield chunk
        except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
            raise PeerUnreachable(_describe(exc)) from None

    def release(self) -> None:
        self._response.release()


class AiohttpTransport:
    """Pooled aiohttp connections to every peer."""

    def __init__(self, timeouts: Timeouts | None = None) -> None:
        self.timeouts = timeouts or Timeouts()
        self._session: aiohttp.ClientSession | None = None

    @property
    def session(self) -> aiohttp.ClientSession:
        if self._session is None:
            connector = aiohttp.TCPConnector(limit=0, limit_per_host=64, keepalive_timeout=30)
            # Compression buys nothing for a few KB of tokens and a gzipping front (nginx, say)
            # may hold stream events back to fill its buffer: ask for none, and decode anyway
            # what a front compresses regardless, so clients always get plain JSON and SSE.
            self._session = aiohttp.ClientSession(
                connector=connector, headers={"Accept-Encoding": "identity"}
            )
        return self._session

    async def request(
        self,
        peer: Peer,
        method: str,
        path: str,
        body: bytes | None = None,
        headers: Mapping[str, str] | None = None,
        timeouts: Timeouts | None = None,
    ) -> _AiohttpReply:
        limits = timeouts or self.timeouts
        url = peer.url.rstrip("/") + path
        try:
            response = await first_byte(
                self.session.request(method, url, data=body, headers=headers, timeout=limits.client_timeout()),
                limits,
            )
        except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
            raise PeerUnreachable(_describe(exc)) from None
        return _AiohttpReply(response, limits)

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()


def _describe(exc: BaseException) -> str:
    if isinstance(exc, PhaseTimeout):
        return str(exc)
    if isinstance(exc, aiohttp.ConnectionTimeoutError):
        return "timed out connecting"
    if isinstance(exc, asyncio.TimeoutError):
        return "timed out"
    if isinstance(exc, aiohttp.ClientConnectorError):
        return f"cannot connect ({exc.os_error.strerror or exc.os_error})"
    return str(exc) or type(exc).__name__
