"""An in-memory :class:`~lobstah_core.router.transport.PeerTransport` for socket-free tests.

In the spirit of httpx's ``MockTransport``: each peer URL maps to an async handler that takes a
:class:`MemoryRequest` and returns a :class:`MemoryResponse` (or raises, or sleeps). The same
phase timeouts apply as on the wire, so failover, blame and timeouts are tested in
milliseconds without opening a socket.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass, field

from ..timeouts import PhaseTimeout, Timeouts, first_byte, idle_chunks
from .peers import Peer
from .transport import PeerUnreachable

__all__ = ["MemoryRequest", "MemoryResponse", "MemoryTransport", "Handler"]


@dataclass(frozen=True)
class MemoryRequest:
    """What the router sent to a peer."""

    peer: Peer
    method: str
    path: str
    body: bytes
    headers: Mapping[str, str]


@dataclass
class MemoryResponse:
    """A peer's answer: ``body`` is bytes, or an async iterable of pieces (a stream)."""

    status: int = 200
    body: bytes | AsyncIterable[bytes] = b""
    headers: dict[str, str] = field(default_factory=dict)


#: A peer: request in, response out (may sleep, or raise PeerUnreachable).
Handler = Callable[[MemoryRequest], Awaitable[MemoryResponse]]


class _MemoryReply:
    def __init__(self, response: MemoryResponse, timeouts: Timeouts) -> None:
        self.status = response.status
        self.headers = response.headers
        self._body = response.body
        self._timeouts = timeouts
        self.released = False

    async def read(self) -> bytes:
        return b"".join([chunk async for chunk in self.chunks()])

    async def chunks(self) -> AsyncIterator[bytes]:
        body = self._body
        if isinstance(body, bytes):
            if body:
                yield body
            return
        pieces = aiter(body)

        async def next_piece() -> bytes:
            try:
                return await anext(pieces)
            except StopAsyncIteration:
                return b""

        try:
            async for chunk in idle_chunks(next_piece, self._timeouts):
                yield chunk
        except PhaseTimeout as exc:
            raise PeerUnreachable(str(exc)) from None

    def release(self) -> None:
        self.released = True


class MemoryTransport:
    """Peers as functions, by URL. ``requests`` records every call in order."""

    def __init__(self, handlers: Mapping[str, Handler], timeouts: Timeouts | None = None) -> None:
        self.handlers = dict(handlers)
        self.timeouts = timeouts or Timeouts()
        self.requests: list[MemoryRequest] = []

    async def request(
        self,
        peer: Peer,
        method: str,
        path: str,
        body: bytes | None = None,
        headers: Mapping[str, str] | None = None,
        timeouts: Timeouts | None = None,
    ) -> _MemoryReply:
        limits = timeouts or self.timeouts
        handler = self.handlers.get(peer.url)
        if handler is None:
            raise PeerUnreachable("cannot connect (connection refused)")
        call = MemoryRequest(peer, method, path, body or b"", dict(headers or {}))
        self.requests.append(call)
        try:
            response = await first_byte(handler(call), limits)
        except (PhaseTimeout, asyncio.TimeoutError) as exc:
            raise PeerUnreachable(str(exc) or "timed out") from None
        return _MemoryReply(response, limits)

    async def aclose(self) -> None:
        pass
