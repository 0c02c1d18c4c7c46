"""Forwarding chat completions to peers, with failover, and collecting their receipts.

Candidates are tried in the order :func:`~.selection.rank` gives. Connection errors, timeouts,
5xx and 429 mark the peer failed and move on; 401/403 (the worker refuses our identity), 402
(no credit with that worker) and 404 (model gone since the last capacity probe) move on without
blaming the peer; any other 4xx is the client's mistake and goes back to it as is. Failover happens only before the first byte
reaches the client: once a stream has started, a failing peer ends it with an SSE error event
and ``[DONE]``. Streams pass through event by event, with the receipt comment taken out.
"""

from __future__ import annotations

import itertools
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from typing import Any

from aiohttp import web

from ..errors import AllPeersFailed, NoCapablePeer, NoPeers, UnsafeUrl
from ..protocol.identity import Identity
from ..protocol.receipts import RECEIPT_COMMENT, RECEIPT_HEADER
from ..protocol.request_signing import sign_request
from ..protocol.url_safety import UrlPolicy, check_peer_url, peer_url_host
from ..resolve import resolve_host
from .directory import PeerDirectory
from .health import HealthBook
from .peers import Peer
from .receipts import ReceiptDesk
from .selection import rank
from .transport import PeerReply, PeerTransport, PeerUnreachable

__all__ = ["Proxy"]

_CHAT_PATH = "/v1/chat/completions"
#: Statuses that say "try another peer" without blaming this one: the worker refuses *us*
#: (our signature, our credit) or no longer has the model. The client's request is not at fault.
_NOT_HERE = {401, 402, 403, 404}


class _Attempts:
    """What went wrong with each peer tried for one request."""

    def __init__(self) -> None:
        self.errors: list[dict[str, str]] = []

    def add(self, peer: Peer, message: str) -> None:
        self.errors.append({"peer": peer.name, "pubkey": peer.pubkey, "message": message})

    def give_up(self) -> AllPeersFailed:
        summary = "; ".join(f"{e['peer']}: {e['message']}" for e in self.errors)
        return AllPeersFailed(
            f"all {len(self.errors)} peers failed ({summary})",
            attempts=len(self.errors),
            errors=self.errors,
        )


class Proxy:
    """The router's request path."""

    def __init__(
        self,
        identity: Identity,
        directory: PeerDirectory,
        transport: PeerTransport,
        desk: ReceiptDesk,
        clock_ms: Callable[[], int],
        url_policy: UrlPolicy | None = None,
        resolve: Callable[[str], Awaitable[list[str]]] = resolve_host,
    ) -> None:
        self.url_policy = url_policy or UrlPolicy()
        self._resolve = resolve
        self.identity = identity
        self.directory = directory
        self.health: HealthBook = directory.health
        self.transport = transport
        self.desk = desk
        self._clock_ms = clock_ms
        self._rotation = itertools.count()

    def candidates(self, model: str, preferred_tier: str | None) -> list[Peer]:
        """Peers to try, best first.

        Raises:
            NoPeers: the peer list is empty.
            NoCapablePeer: no healthy peer serves ``model``.
        """
        capable = self.directory.capable(model)
        if not capable:
            if not self.directory.active():
                raise NoPeers("this router has no peers: add one with `lobstah-core peers add PUBKEY URL`")
            raise NoCapablePeer(f"no healthy peer serves model {model!r}", model=model)
        return rank(capable, self.health.peers, preferred_tier, next(self._rotation))

    async def plain(self, raw: bytes, model: str) -> web.Response:
        outcome = await self.forward(raw, model, None, _CHAT_PATH)
        if isinstance(outcome, web.Response):
            return outcome
        status, body, headers, peer = outcome
        # The client's answer does not wait for the receipt's verification and ledger write.
        self.desk.accept_later(headers.get(RECEIPT_HEADER), peer.pubkey)
        return web.Response(body=body, status=status, content_type="application/json")

    async def forward(
        self, raw: bytes, model: str, preferred_tier: str | None, path: str
    ) -> tuple[int, bytes, Mapping[str, str], Peer] | web.Response:
        """POST ``raw`` to ``path`` on the first candidate that answers 2xx.

        Returns:
            (status, body, headers, peer) of that answer, or a 4xx response for the client.

        Raises:
            NoPeers, NoCapablePeer, AllPeersFailed.
        """
        attempts = _Attempts()
        for peer in self.candidates(model, preferred_tier):
            started = time.perf_counter()
            reply = await self._send(peer, raw, attempts, path)
            if reply is None:
                continue
            if isinstance(reply, web.Response):
                return reply
            try:
                body = await reply.read()
            except PeerUnreachable as exc:
                self._failed(peer, exc.message, attempts)
                continue
            finally:
                reply.release()
                self.health.of(peer.pubkey).in_flight -= 1
            elapsed = _ms_since(started)
            self.health.succeeded(peer.pubkey, elapsed, elapsed)
            return reply.status, body, reply.headers, peer
        raise attempts.give_up()

    async def stream(self, request: web.Request, raw: bytes, model: str) -> web.StreamResponse:
        attempts = _Attempts()
        for peer in self.candidates(model, "interactive"):
            started = time.perf_counter()
            reply = await self._send(peer, raw, attempts, _CHAT_PATH)
            if reply is None:
                continue
            if isinstance(reply, web.Response):
                return reply
            try:
                chunks, relay = reply.chunks(), SseRelay()
                try:
                    first = await _first_events(chunks, relay)
                except PeerUnreachable as exc:
                    self._failed(peer, exc.message, attempts)
                    continue
                return await self._relay(request, peer, first, chunks, relay, started)
            finally:
                reply.release()
                self.health.of(peer.pubkey).in_flight -= 1
        raise attempts.give_up()

    async def _relay(
        self,
        request: web.Request,
        peer: Peer,
        first: bytes,
        chunks: AsyncIterator[bytes],
        relay: SseRelay,
        started: float,
    ) -> web.StreamResponse:
        ttfb = _ms_since(started)
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"})
        await response.prepare(request)
        await response.write(first)
        try:
            async for chunk in chunks:
                events = relay.feed(chunk)
                if events:
                    await response.write(events)
        except PeerUnreachable as exc:
            self.health.failed(peer.pubkey, exc.message)
            error = {"error": {"type": "peer_failed", "message": f"peer {peer.name} failed mid-stream: {exc.message}"}}
            await response.write(b"data: " + json.dumps(error).encode() + b"\n\ndata: [DONE]\n\n")
            await response.write_eof()
            return response
        rest = relay.finish()
        if rest:
            await response.write(rest)
        self.health.succeeded(peer.pubkey, ttfb, _ms_since(started))
        await response.write_eof()
        self.desk.accept_later(relay.receipt, peer.pubkey)
        return response

    async def _send(self, peer: Peer, raw: bytes, attempts: _Attempts, path: str) -> PeerReply | web.Response | None:
        """Send to one peer. Returns its 2xx reply (in flight), a 4xx response to pass back to
        the client, or ``None`` when the next peer should be tried."""
        if peer.source in ("tracker", "nostr") and not await self._url_still_safe(peer, attempts):
            return None
        headers = {"Content-Type": "application/json", **sign_request(self.identity, "POST", path, raw, self._clock_ms())}
        state = self.health.of(peer.pubkey)
        state.in_flight += 1
        try:
            reply = await self.transport.request(peer, "POST", path, raw, headers)
        except PeerUnreachable as exc:
            state.in_flight -= 1
            self._failed(peer, exc.message, attempts)
            return None
        if 200 <= reply.status < 300:
            return reply  # in_flight is decremented by the caller when done with it
        try:
            body = await reply.read()
        except PeerUnreachable:
            body = b""
        finally:
            reply.release()
            state.in_flight -= 1
        message = _error_message(reply.status, body)
        if reply.status >= 500 or reply.status == 429:
            self._failed(peer, message, attempts)
            return None
        if reply.status in _NOT_HERE:
            attempts.add(peer, message)
            return None
        return web.Response(body=body, status=reply.status, content_type="application/json")

    async def _url_still_safe(self, peer: Peer, attempts: _Attempts) -> bool:
        """Discovered peers are checked again at request time: DNS may have changed since."""
        try:
            check_peer_url(peer.url, await self._resolve(peer_url_host(peer.url)), self.url_policy)
        except UnsafeUrl as exc:
            self._failed(peer, f"refused its URL: {exc.message}", attempts)
            return False
        return True

    def _failed(self, peer: Peer, message: str, attempts: _Attempts) -> None:
        self.health.failed(peer.pubkey, message)
        attempts.add(peer, message)


class SseRelay:
    """Cuts a worker's SSE byte stream into complete events and takes out the receipt comment.

    Whole events are passed on as soon as they are complete, many per write when they arrive
    together; a partial event waits for its end.
    """

    _MARK = RECEIPT_COMMENT.encode()

    def __init__(self) -> None:
        self._buffer = b""
        #: The receipt comment's base64 value, once seen.
        self.receipt: str | None = None

    def feed(self, chunk: bytes) -> bytes:
        """Add bytes off the wire; returns the complete events to pass on (maybe none)."""
        self._buffer += chunk
        end = _events_end(self._buffer)
        if end == 0:
            return b""
        complete, self._buffer = self._buffer[:end], self._buffer[end:]
        return self._strip_receipt(complete)

    def finish(self) -> bytes:
        """What is left when the stream ends (an unterminated last event)."""
        rest, self._buffer = self._buffer, b""
        return self._strip_receipt(rest) if rest.strip() else b""

    def _strip_receipt(self, events: bytes) -> bytes:
        """``events`` without the receipt comment event (every other byte passes unchanged)."""
        at = events.find(self._MARK)
        while at != -1:
            if at == 0 or events.endswith(b"\n\n", 0, at) or events.endswith(b"\r\n\r\n", 0, at):
                end = _event_end_from(events, at)
                self.receipt = events[at + len(self._MARK) : end].strip().decode("ascii", "replace")
                events = events[:at] + events[end:]
                at = events.find(self._MARK, at)
            else:  # the mark inside an event's data is not the receipt
                at = events.find(self._MARK, at + 1)
        return events


def _event_end_from(buffer: bytes, start: int) -> int:
    """Where the event beginning at ``start`` ends, its blank line included (or the end)."""
    ends = [i + len(blank) for blank in (b"\n\n", b"\r\n\r\n") if (i := buffer.find(blank, start)) >= 0]
    return min(ends, default=len(buffer))


def _events_end(buffer: bytes) -> int:
    """Where the last complete SSE event in ``buffer`` ends (0: none is complete yet)."""
    lf, crlf = buffer.rfind(b"\n\n"), buffer.rfind(b"\r\n\r\n")
    return max(lf + 2 if lf >= 0 else 0, crlf + 4 if crlf >= 0 else 0)


async def _first_events(chunks: AsyncIterator[bytes], relay: SseRelay) -> bytes:
    """Read until at least one complete event is in; nothing has reached the client yet.

    Raises:
        PeerUnreachable: the peer failed or closed the stream before any event.
    """
    async for chunk in chunks:
        events = relay.feed(chunk)
        if events:
            return events
    raise PeerUnreachable("closed the stream before any event")


def _error_message(status: int, body: bytes) -> str:
    try:
        error: Any = json.loads(body)["error"]
        return f"{status} {error.get('type', 'error')}: {error.get('message', '')}".strip()
    except (ValueError, KeyError, TypeError, AttributeError):
        return f"{status} {body[:120].decode('utf-8', 'replace')}".strip()


def _ms_since(started: float) -> float:
    return (time.perf_counter() - started) * 1000
