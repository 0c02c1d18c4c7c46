"""Relaying a peer's answer to the client: plain bodies, and SSE streams event by event.

A stream is committed (200 and headers to the client) as soon as the dispatch core has a 2xx
status line from the peer; while the first event is pending, a ``: keep-alive`` comment goes
out every :data:`KEEPALIVE_S` so the client and anything between know the stream is alive.
Events pass through whole, with the receipt comment taken out. A peer that fails after the
commit ends the stream with one error event and ``[DONE]`` (the shared HTTP layer writes them).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from aiohttp import web

from ..http import open_event_stream
from ..protocol.receipts import RECEIPT_COMMENT, RECEIPT_HEADER
from .dispatch import Call, Dispatcher, PeerFailedMidStream
from .receipts import ReceiptDesk

__all__ = ["relay_plain", "relay_stream", "SseRelay", "KEEPALIVE_S"]

#: Seconds between keep-alive comments while the first event is pending.
KEEPALIVE_S = 5.0


async def relay_plain(dispatcher: Dispatcher, desk: ReceiptDesk, call: Call) -> web.Response:
    """The first peer's whole answer to ``call``; its receipt goes to ``desk`` meanwhile."""
    answer = await dispatcher.fetch(call)
    # The client's answer does not wait for the receipt's verification and ledger write.
    desk.accept_later(answer.headers.get(RECEIPT_HEADER), answer.peer.pubkey)
    return web.Response(body=answer.body, status=answer.status, content_type="application/json")


async def relay_stream(
    request: web.Request, dispatcher: Dispatcher, desk: ReceiptDesk, call: Call
) -> web.StreamResponse:
    """Stream the first peer's answer to ``call`` to the client, event by event."""
    async with dispatcher.stream(call) as stream:
        response = await open_event_stream(request)
        relay = SseRelay()
        chunks = stream.chunks()
        first = await _first_events(chunks, relay, response)
        if not first:
            dispatcher.health.failed(stream.peer.pubkey, "ended its answer before any event")
            raise PeerFailedMidStream(f"peer {stream.peer.name} failed mid-stream: it ended its answer before any event")
        await response.write(first)
        async for chunk in chunks:
            events = relay.feed(chunk)
            if events:
                await response.write(events)
        rest = relay.finish()
        if rest:
            await response.write(rest)
        peer = stream.peer
    await response.write_eof()
    desk.accept_later(relay.receipt, peer.pubkey)
    return response


async def _first_events(chunks: AsyncIterator[bytes], relay: SseRelay, response: web.StreamResponse) -> bytes:
    """Read until a complete event is in, with a keep-alive comment every KEEPALIVE_S;
    ``b""`` if the answer ended before any."""
    while True:
        pending = asyncio.ensure_future(anext(chunks, b""))
        try:
            while not (await asyncio.wait({pending}, timeout=KEEPALIVE_S))[0]:
                await response.write(b": keep-alive\n\n")
        finally:
            pending.cancel()  # a no-op once it is done; stops the read if the client left
        chunk = pending.result()
        if not chunk:
            return b""
        events = relay.feed(chunk)
        if events:
            return events


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
