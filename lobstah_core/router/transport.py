"""The peer transport seam: how the router talks HTTP to a worker.

Routing, failover and receipt checks work against :class:`PeerTransport`; the aiohttp
implementation below is the real one (one pooled session for every peer).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping
from typing import Protocol

import aiohttp

from ..errors import LobstahError
from .peers import Peer

__all__ = ["PeerTransport", "PeerReply", "PeerUnreachable", "AiohttpTransport"]


class PeerUnreachable(LobstahError):
    """The peer could not be reached, or stopped answering (connection, timeout)."""

    type = "peer_unreachable"
    status = 502


class PeerReply(Protocol):
    status: int
    headers: Mapping[str, str]

    async def read(self) -> bytes: ...

    def chunks(self) -> AsyncIterator[bytes]:
        """The body in pieces as they arrive off the wire."""
        ...

    def release(self) -> None: ...


class PeerTransport(Protocol):
    async def request(
        self,
        peer: Peer,
        method: str,
        path: str,
        body: bytes | None = None,
        headers: Mapping[str, str] | None = None,
        timeout: float | None = None,
    ) -> PeerReply:
        """Send a request; returns once the status line and headers are in.

        Raises:
            PeerUnreachable: connection refused, reset, or no answer within ``timeout``.
        """
        ...

    async def aclose(self) -> None: ...


class _AiohttpReply:
    def __init__(self, response: aiohttp.ClientResponse) -> None:
        self._response = response
        self.status = response.status
        self.headers = response.headers

    async def read(self) -> bytes:
        try:
            return await self._response.read()
        except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
            raise PeerUnreachable(_describe(exc)) from None

    async def chunks(self) -> AsyncIterator[bytes]:
        try:
            async for chunk in self._response.content.iter_any():
                yield chunk
        except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
            raise PeerUnreachable(_describe(exc)) from None

    def release(self) -> None:
        self._response.release()


class AiohttpTransport:
    """Pooled aiohttp connections to every peer."""

    def __init__(self, connect_timeout: float = 5.0, read_timeout: float = 300.0) -> None:
        self._timeout = aiohttp.ClientTimeout(total=None, sock_connect=connect_timeout, sock_read=read_timeout)
        self._session: aiohttp.ClientSession | None = None

    @property
    def session(self) -> aiohttp.ClientSession:
        if self._session is None:
            connector = aiohttp.TCPConnector(limit=0, limit_per_host=64, keepalive_timeout=30)
            # Compression buys nothing for a few KB of tokens and a gzipping front (nginx, say)
            # may hold stream events back to fill its buffer: ask for none, and decode anyway
            # what a front compresses regardless, so clients always get plain JSON and SSE.
            self._session = aiohttp.ClientSession(
                connector=connector, timeout=self._timeout, headers={"Accept-Encoding": "identity"}
            )
        return self._session

    async def request(
        self,
        peer: Peer,
        method: str,
        path: str,
        body: bytes | None = None,
        headers: Mapping[str, str] | None = None,
        timeout: float | None = None,
    ) -> _AiohttpReply:
        url = peer.url.rstrip("/") + path
        per_call = aiohttp.ClientTimeout(total=timeout, sock_connect=timeout) if timeout else None
        try:
            response = await self.session.request(
                method, url, data=body, headers=headers, timeout=per_call or self._timeout
            )
        except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
            raise PeerUnreachable(_describe(exc)) from None
        return _AiohttpReply(response)

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()


def _describe(exc: BaseException) -> str:
    if isinstance(exc, asyncio.TimeoutError):
        return "timed out"
    if isinstance(exc, aiohttp.ClientConnectorError):
        return f"cannot connect ({exc.os_error.strerror or exc.os_error})"
    return str(exc) or type(exc).__name__
