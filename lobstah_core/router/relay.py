"""Relaying a peer's answer to the client: plain bodies, and SSE streams event by event.

A stream is committed (no failover any more) as soon as the dispatch core has a 2xx status line
from the peer. The client's 200 and headers leave with the first event, in one packet, or after
:data:`HEADERS_WAIT_S` if that event is slower to come (a worker sends its 2xx once its engine
has the first token, so it rarely is); whenever the stream is silent for :data:`KEEPALIVE_S`
(waiting for the first token, say), a ``: keep-alive`` comment goes out so the client and
anything between know the stream is alive.
Events pass through whole, with the receipt comment taken out. A peer that fails after the
commit ends the stream with one error event and ``[DONE]`` (the shared HTTP layer writes them).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from typing import Any, Protocol

from aiohttp import web

from ..http import open_event_stream
from ..protocol.receipts import RECEIPT_COMMENT, RECEIPT_HEADER
from ..engines.base import Usage, usage_of
from ..protocol.sse import SseDecoder
from .dispatch import Answer, Call, Dispatcher, PeerFailedMidStream, Stream
from .peers import Peer
from .receipts import ReceiptDesk
from .reconcile import Reconciler

__all__ = [
    "relay_plain", "relay_stream", "relay_events", "EventSink", "fetch_with_receipt", "Settlement", "SseRelay",
    "KEEPALIVE_S",
]

#: Seconds between keep-alive comments while the first event is pending.
KEEPALIVE_S = 5.0
#: Seconds the client's headers wait for the first event to go with it, at most.
HEADERS_WAIT_S = 0.5


class Settlement:
    """Where a relayed answer's receipt goes: the receipt desk (checked against the usage the
    answer reported, issue 15 "inflated"), and the reconciler when no receipt came."""

    def __init__(self, desk: ReceiptDesk, reconciler: Reconciler | None = None) -> None:
        self.desk, self.reconciler = desk, reconciler

    def settle(self, receipt: str | None, peer: str, usage: Usage | None) -> None:
        """Hand ``receipt`` (a header or comment value) from ``peer`` over, never blocking."""
        self.desk.accept_later(receipt, peer, usage)
        if receipt is None:
            self.missing(peer)

    def settle_answer(self, answer: Answer) -> None:
        """:meth:`settle` a whole answer's receipt header, checked against its ``usage``."""
        self.settle(answer.headers.get(RECEIPT_HEADER), answer.peer.pubkey, _usage_in(answer.body))

    def settle_soon(self, answer: Answer) -> Answer:
        """:meth:`settle_answer` once this turn of the loop is over, and return ``answer``: the
        client's answer, which this turn writes, does not wait for the receipt (verified and
        ledgered later still)."""
        asyncio.get_running_loop().call_soon(self.settle_answer, answer)
        return answer

    def settle_relayed(self, relay: SseRelay, peer: str) -> None:
        """:meth:`settle` the receipt comment a relayed stream from ``peer`` carried, checked
        against the usage its events reported."""
        self.settle(relay.receipt, peer, _usage_in(relay.usage_event))

    def missing(self, peer: str) -> None:
        """An answer from ``peer`` ended without its receipt: pull it from the peer soon."""
        if self.reconciler is not None:
            self.reconciler.recover_later(peer)


async def fetch_with_receipt(
    dispatcher: Dispatcher, settlement: Settlement, call: Call, *, peer: Peer | None = None
) -> Answer:
    """The first peer's whole answer to ``call`` (only ``peer``'s, when given: see
    :meth:`Dispatcher.fetch`); its receipt is settled meanwhile."""
    return settlement.settle_soon(await dispatcher.fetch(call, peer=peer))


async def relay_plain(dispatcher: Dispatcher, settlement: Settlement, call: Call) -> web.Response:
    """The first peer's whole answer to ``call`` as it came; its receipt is settled meanwhile."""
    answer = settlement.settle_soon(await dispatcher.fetch(call))
    return web.Response(body=answer.body, status=answer.status, content_type="application/json")


async def relay_stream(
    request: web.Request, dispatcher: Dispatcher, settlement: Settlement, call: Call
) -> web.StreamResponse:
    """Stream the first peer's answer to ``call`` to the client, event by event."""
    try:
        return await _relay_stream(request, dispatcher, settlement, call)
    except PeerFailedMidStream as failed:
        settlement.missing(failed.peer)
        raise


async def _relay_stream(
    request: web.Request, dispatcher: Dispatcher, settlement: Settlement, call: Call
) -> web.StreamResponse:
    async with dispatcher.stream(call) as stream:
        response = await open_event_stream(request, headers_now=False)
        relay, beat = SseRelay(), _Heartbeat(response)
        try:
            async for chunk in stream.chunks():
                events = relay.feed(chunk)
                if events:
                    beat.wrote()
                    await response.write(events)
            rest = relay.finish()
            if rest:
                await response.write(rest)
        except asyncio.CancelledError:
            # The client hung up. The openai SDK does so on reading [DONE], which a worker
            # writes after the receipt but before its body ends: a receipt in hand is owed all
            # the same (reconciliation would fetch it later), so it is taken now.
            if relay.receipt is not None:
                settlement.settle_relayed(relay, stream.peer.pubkey)
            raise
        finally:
            await beat.stop()
        _require_an_event(dispatcher, stream, relay)
        peer = stream.peer
    await _end_body(response)
    settlement.settle_relayed(relay, peer.pubkey)
    return response


async def _end_body(response: web.StreamResponse) -> None:
    """End a relayed stream's body. A client may have hung up once it read the end of the
    answer (the openai SDK does on ``[DONE]``): nobody is left to tell, and the receipt after
    this is owed all the same."""
    with contextlib.suppress(ConnectionResetError):
        await response.write_eof()


class EventSink(Protocol):
    """Another wire format for a relayed stream (the Ollama API's NDJSON, say)."""

    #: The client's ``Content-Type``.
    content_type: str

    def feed(self, event: dict[str, Any]) -> bytes:
        """The bytes one of the peer's OpenAI events (a JSON object) becomes (maybe none)."""
        ...

    def finish(self) -> bytes:
        """The bytes that end the stream once the peer's has ended."""
        ...

    def failure(self, body: dict[str, Any]) -> bytes:
        """The bytes that end the stream with the grid's error ``body`` (after the commit)."""
        ...


async def relay_events(
    request: web.Request, dispatcher: Dispatcher, settlement: Settlement, call: Call, sink: EventSink
) -> web.StreamResponse:
    """Stream the first peer's answer to ``call`` to the client in ``sink``'s format: each
    SSE event's JSON object goes through ``sink``, the receipt is settled. No keep-alive
    comments: formats such as NDJSON have no place for them."""
    try:
        async with dispatcher.stream(call) as stream:
            response = await open_event_stream(request, sink.content_type, failure=sink.failure)
            relay, decoder = SseRelay(), SseDecoder()
            peer = stream.peer
            async for chunk in stream.chunks():
                await _write_events(response, sink, decoder.feed(relay.feed(chunk)), peer.pubkey)
            await _write_events(response, sink, decoder.feed(relay.finish() + b"\n\n"), peer.pubkey)
            _require_an_event(dispatcher, stream, relay)
            await response.write(sink.finish())
    except PeerFailedMidStream as failed:
        settlement.missing(failed.peer)
        raise
    await _end_body(response)
    settlement.settle_relayed(relay, peer.pubkey)
    return response


async def _write_events(response: web.StreamResponse, sink: EventSink, events: list[str], peer: str) -> None:
    out = b"".join(sink.feed(_json_object(data, peer)) for data in events if data != "[DONE]")
    if out:
        await response.write(out)


def _json_object(data: str, peer: str) -> dict[str, Any]:
    try:
        event = json.loads(data)
    except ValueError:
        event = None
    if not isinstance(event, dict):
        raise PeerFailedMidStream(f"the peer sent an event that is not a JSON object: {data[:80]!r}", peer)
    return event


def _require_an_event(dispatcher: Dispatcher, stream: Stream, relay: SseRelay) -> None:
    """A peer that ended a committed stream before any event failed (counted in its health);
    so did one whose stream carried an error event (its engine broke off: the worker said so).

    Raises:
        PeerFailedMidStream: it ended before any event.
    """
    if relay.error_event:
        stream.fail("its stream ended with an error event (the engine failed mid-answer)")
    if not relay.seen_event:
        dispatcher.health.failed(stream.peer.pubkey, "ended its answer before any event")
        raise PeerFailedMidStream(
            f"peer {stream.peer.name} failed mid-stream: it ended its answer before any event", stream.peer.pubkey
        )


def _usage_in(body: bytes | None) -> Usage | None:
    """The ``usage`` a completion or chunk (JSON bytes) reports, if any."""
    if not body or b'"usage"' not in body:
        return None
    try:
        return usage_of(json.loads(body))
    except (ValueError, RecursionError, AttributeError):
        return None


class _Heartbeat:
    """Sends the headers if no event came within HEADERS_WAIT_S, then writes ``: keep-alive``
    whenever the stream has been silent for KEEPALIVE_S.

    Safe beside the relay's writes: those always hold whole events, so a comment can only
    land between two events, where SSE clients ignore it. A timer, re-armed lazily from
    ``last_write``, rather than a task per stream: most streams never need a comment.
    """

    def __init__(self, response: web.StreamResponse) -> None:
        self._loop = asyncio.get_running_loop()
        self.last_write = self._loop.time()
        self._response = response
        self._writing: asyncio.Task[None] | None = None
        self._started = self.last_write
        first = self.last_write + min(HEADERS_WAIT_S, KEEPALIVE_S)
        self._timer: asyncio.TimerHandle | None = self._loop.call_at(first, self._headers_due)

    def wrote(self) -> None:
        """The relay wrote an event now: silence counts from here."""
        self.last_write = self._loop.time()

    def _headers_due(self) -> None:
        if self.last_write == self._started and not self._silent_too_long():  # no event yet
            self._write(b"")  # the headers alone (a comment due now carries them instead)
        self._due()

    def _silent_too_long(self) -> bool:
        return self._loop.time() - self.last_write >= KEEPALIVE_S - 0.001  # call_at may fire a hair early

    def _due(self) -> None:
        if self._silent_too_long():
            self.last_write = self._loop.time()
            self._write(b": keep-alive\n\n")
        self._timer = self._loop.call_at(self.last_write + KEEPALIVE_S, self._due)

    def _write(self, data: bytes) -> None:
        if self._writing is None or self._writing.done():
            self._writing = asyncio.ensure_future(self._response.write(data))
            self._writing.add_done_callback(_retrieve)

    async def stop(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._writing is not None:
            self._writing.cancel()
            with contextlib.suppress(asyncio.CancelledError, ConnectionError, RuntimeError):
                await self._writing


def _retrieve(task: asyncio.Task[None]) -> None:
    """Take a finished comment's error (the client left): the stream's own writes report it."""
    if not task.cancelled():
        task.exception()


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
        #: Whether any complete event has come through.
        self.seen_event = False
        #: The data of the last event that reported ``usage`` (the worker's usage chunk).
        self.usage_event: bytes | None = None
        #: Whether an error event came through (``data: {"error": ...}``).
        self.error_event = False

    def feed(self, chunk: bytes) -> bytes:
        """Add bytes off the wire; returns the complete events to pass on (maybe none)."""
        self._buffer += chunk
        end = _events_end(self._buffer)
        if end == 0:
            return b""
        complete, self._buffer = self._buffer[:end], self._buffer[end:]
        self.seen_event = True
        if b'"usage":{' in complete:
            self._note_usage(complete)
        if b'{"error":' in complete:
            self.error_event = self.error_event or _has_error_event(complete)
        return self._strip_receipt(complete)

    def _note_usage(self, events: bytes) -> None:
        at = events.rfind(b'"usage":{')
        start = events.rfind(b"data:", 0, at)
        end = _event_end_from(events, at)
        if start >= 0:
            self.usage_event = events[start + 5 : end].strip()

    def finish(self) -> bytes:
        """What is left when the stream ends (an unterminated last event)."""
        rest, self._buffer = self._buffer, b""
        if not rest.strip():
            return b""
        self.seen_event = True
        return self._strip_receipt(rest)

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


def _has_error_event(events: bytes) -> bool:
    """Whether one of these events' data is an error object (not text that mentions one)."""
    return any(line.startswith((b'data: {"error":', b'data:{"error":')) for line in events.splitlines())


def _event_end_from(buffer: bytes, start: int) -> int:
    """Where the event beginning at ``start`` ends, its blank line included (or the end)."""
    ends = [i + len(blank) for blank in (b"\n\n", b"\r\n\r\n") if (i := buffer.find(blank, start)) >= 0]
    return min(ends, default=len(buffer))


def _events_end(buffer: bytes) -> int:
    """Where the last complete SSE event in ``buffer`` ends (0: none is complete yet)."""
    lf, crlf = buffer.rfind(b"\n\n"), buffer.rfind(b"\r\n\r\n")
    return max(lf + 2 if lf >= 0 else 0, crlf + 4 if crlf >= 0 else 0)
