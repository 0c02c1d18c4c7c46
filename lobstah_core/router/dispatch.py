"""The dispatch core: every front's way to a peer (pick → attempt → commit → relay).

Fronts (chat completions plain and streamed, jobs; later batches, the Ollama API, embeddings)
describe a :class:`Call` and get back an :class:`Answer` (a whole body) or a :class:`Stream`
(committed once the peer answered 2xx); everything that goes wrong before the commit is raised
as a typed :class:`~lobstah_core.errors.LobstahError` the HTTP layer turns into a response.

Who is to blame follows WIRE.md "[ext] who is to blame":

==========================================  ===============================================
the peer answers                            what happens
==========================================  ===============================================
2xx                                         commit (plain: read the body first; a body that
                                            breaks off is a failure and fails over)
4xx other than 401/402/403/404/408/429      :class:`PeerRefused`: the request's fault, its
                                            status and message go back to the client; no
                                            failover, no penalty
429, or 503 with ``Retry-After``            busy: next candidate, no penalty; every
                                            candidate busy → :class:`AllPeersBusy` (429)
401, 402, 403, 404                          next candidate, no penalty (the peer refuses
                                            *us*, or lost the model since its last probe);
                                            every candidate 402 → :class:`InsufficientCredit`
                                            (402)
408, other 5xx, refused or broken           failure: next candidate, counted in the peer's
connection, a phase timeout                 health (two in a row exclude it for 30 s)
==========================================  ===============================================

``in_flight`` is kept by :meth:`HealthBook.attempt` around each attempt, so no path (answer,
error, client hanging up) can leak it. How each call ended is handed to ``on_call`` as a
:class:`CallRecord` (the router's metrics), whatever the front.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import math
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from ..errors import AllPeersFailed, InsufficientCredit, LobstahError, ModelNotFound, NoCapablePeer, NoPeers, RetryLater, UnsafeUrl
from ..protocol.identity import Identity
from ..protocol.model_names import lists_model
from ..protocol.request_signing import sign_request
from ..protocol.url_safety import UrlPolicy
from ..resolve import resolve_host
from ..timeouts import Timeouts
from .directory import PeerDirectory
from .health import HealthBook
from .peers import Peer
from .selection import rank
from .transport import PeerReply, PeerTransport, PeerUnreachable
from .url_guard import PeerUrlGuard

__all__ = [
    "Call",
    "Answer",
    "Stream",
    "Dispatcher",
    "PeerRefused",
    "PeerFailedMidStream",
    "AllPeersBusy",
    "CallRecord",
    "retry_after_seconds",
]

#: The peer refuses *us* (signature, credit) or no longer has the model: next, no penalty.
_NOT_HERE = frozenset({401, 402, 403, 404})


class PeerRefused(LobstahError):
    """A peer refused the request as the client's fault (a 4xx): passed back as it came.

    ``body`` is the peer's own error body when it had the OpenAI shape.
    """

    type = "invalid_request"

    def __init__(self, status: int, message: str, body: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self._body = body

    def to_body(self) -> dict[str, Any]:
        return self._body if self._body is not None else super().to_body()


class PeerFailedMidStream(LobstahError):
    """The chosen peer (``peer``, a pubkey) broke off after the stream was committed (no
    failover is possible)."""

    type = "peer_failed"
    status = 502

    def __init__(self, message: str, peer: str) -> None:
        super().__init__(message)
        self.peer = peer


class AllPeersBusy(RetryLater):
    """Every candidate was busy; ``retry_after`` is the smallest wait any of them asked for."""

    type = "rate_limited"
    status = 429


class Call(NamedTuple):
    """One request to dispatch: the client's body goes to ``path`` on a peer unchanged.

    (Named tuples rather than frozen dataclasses, here and for :class:`Answer`: one of each is
    made per request, and a frozen dataclass takes a microsecond more to make.)
    """

    path: str
    body: bytes
    model: str
    #: The tier that fits (``interactive`` for streams, ``batch`` for jobs), if any.
    tier: str | None = None


@dataclass(slots=True)
class CallRecord:
    """How one call through the core ended (for metrics).

    ``outcome`` is ``ok``; ``refused`` (the request's fault); ``busy``; ``failed`` (every
    candidate failed, or the chosen one broke off mid-stream); ``no_model``; ``unavailable``
    (no peers, or every holder excluded); ``cancelled`` (the client went away); ``error``.
    """

    model: str
    path: str
    outcome: str = "ok"
    #: The name of the peer whose answer was taken ("" when none was).
    peer: str = ""
    #: Seconds to the chosen peer's status line (plain) or first piece of body (stream).
    first_byte_s: float | None = None
    total_s: float = 0.0


class Answer(NamedTuple):
    """A peer's whole 2xx answer."""

    peer: Peer
    status: int
    headers: Mapping[str, str]
    body: bytes


@dataclass
class Stream:
    """A committed 2xx answer whose body is relayed as it arrives (see :meth:`chunks`)."""

    peer: Peer
    status: int
    headers: Mapping[str, str]
    _reply: PeerReply = field(repr=False)
    _health: HealthBook = field(repr=False)
    _started: float = field(repr=False)
    #: Milliseconds from sending the request to the first piece of the body.
    ttfb_ms: float | None = None
    #: Whether the body was read to its end.
    completed: bool = False

    async def chunks(self) -> AsyncIterator[bytes]:
        """The body in pieces. A break or a silence past the idle limit counts as the peer's
        failure and is raised as :class:`PeerFailedMidStream` (the client's stream is
        committed: the HTTP layer ends it with an error event)."""
        try:
            async for chunk in self._reply.chunks():
                if self.ttfb_ms is None:
                    self.ttfb_ms = _ms_since(self._started)
                yield chunk
        except PeerUnreachable as exc:
            self._health.failed(self.peer.pubkey, f"mid-stream: {exc.message}")
            raise PeerFailedMidStream(f"peer {self.peer.name} failed mid-stream: {exc.message}", self.peer.pubkey) from None
        self.completed = True

    def fail(self, message: str) -> None:
        """The answer came whole but reports a failure of the peer's own (its engine broke off
        mid-stream and the worker said so in an error event): count it, as a break would be."""
        self.completed = False
        self._health.failed(self.peer.pubkey, message)


class _Attempts:
    """What each peer tried for one request said, and how to give up."""

    def __init__(self) -> None:
        self.errors: list[dict[str, Any]] = []
        self.busy_hints: list[int] = []
        self.failures = 0

    def add(self, peer: Peer, message: str, status: int | None = None) -> None:
        error: dict[str, Any] = {"peer": peer.name, "pubkey": peer.pubkey, "message": message}
        if status is not None:
            error["status"] = status
        self.errors.append(error)

    def give_up(self) -> LobstahError:
        if self.busy_hints and len(self.busy_hints) == len(self.errors):
            wait = min(self.busy_hints)
            return AllPeersBusy(
                f"every peer serving this model is busy; retry in {wait} s",
                retry_after=wait, attempts=len(self.errors), errors=self.errors,
            )
        summary = "; ".join(f"{e['peer']}: {e['message']}" for e in self.errors)
        if self.errors and all(e.get("status") == 402 for e in self.errors):
            # Every peer wants credit we lack: the client's case to settle (lend compute, or
            # ask friends), not a failure of the grid a retry would cure.
            return InsufficientCredit(
                f"no peer serves us without more credit ({summary}); earn some by lending compute "
                "(lobstah-core worker start), or ask a peer to let you in",
                attempts=len(self.errors), errors=self.errors,
            )
        return AllPeersFailed(
            f"all {len(self.errors)} peers failed ({summary})", attempts=len(self.errors), errors=self.errors
        )


class Dispatcher:
    """Sends calls to peers in rank order, with failover and blame (module docstring)."""

    def __init__(
        self,
        identity: Identity,
        directory: PeerDirectory,
        transport: PeerTransport,
        clock_ms: Callable[[], int],
        timeouts: Timeouts | None = None,
        url_policy: UrlPolicy | None = None,
        resolve: Callable[[str], Awaitable[list[str]]] = resolve_host,
        on_call: Callable[[CallRecord], None] | None = None,
    ) -> None:
        """
        Args:
            on_call: told how every call ended, once it has (see :class:`CallRecord`).
        """
        self.identity, self.directory, self.transport = identity, directory, transport
        self.on_call = on_call
        self.health: HealthBook = directory.health
        self.timeouts = timeouts or Timeouts()
        self.url_guard = PeerUrlGuard(url_policy, resolve)
        self._clock_ms = clock_ms
        self._rotation = itertools.count()

    def candidates(self, model: str, tier: str | None) -> list[Peer]:
        """Peers to try for ``model``, best first.

        Raises:
            NoPeers: the peer list is empty (503).
            ModelNotFound: no peer lists ``model`` and every peer could be asked (404).
            NoCapablePeer: peers list it but all are excluded, or some peers could not be
                asked (503 with ``retry_after``).
        """
        # One pass over the peers (this is on every request's path): the healthy holders of
        # the model, and what to say when there are none.
        active = self.directory.active()  # (announcements not expired)
        now = self._clock_ms()
        healthy: list[Peer] = []
        excluded_until: list[int] = []
        unknown = 0
        for peer in active:
            state = self.health.of(peer.pubkey)
            capacity = state.capacity
            if capacity is None:
                unknown += 1
            elif lists_model(capacity.models, model):
                if state.excluded(now):
                    excluded_until.append(state.excluded_until)
                else:
                    healthy.append(peer)
        if not healthy:
            raise self._no_candidate(model, len(active), unknown, excluded_until, now)
        return rank(healthy, self.health.peers, tier, next(self._rotation))

    def _no_candidate(self, model: str, active: int, unknown: int, excluded_until: list[int], now: int) -> LobstahError:
        """Why no peer can take ``model`` (see :meth:`candidates`)."""
        if not active:
            return NoPeers("this router has no peers: add one with `lobstah-core peers add PUBKEY URL`")
        if excluded_until:
            return NoCapablePeer(
                f"every peer serving model {model!r} is excluded after failures",
                retry_after=max(1, math.ceil((min(excluded_until) - now) / 1000)), model=model,
            )
        if unknown:
            return NoCapablePeer(
                f"no reachable peer serves model {model!r} ({unknown} peers could not be asked)",
                retry_after=max(1, math.ceil(self.directory.interval)), model=model,
            )
        return ModelNotFound(f"no peer of this grid serves model {model!r}", model=model)

    async def fetch(self, call: Call, *, peer: Peer | None = None) -> Answer:
        """The first whole 2xx answer to ``call``, failing over as the blame rules say.

        Args:
            peer: ask only this peer (the batch scheduler places each item itself); what it
                says is judged by the same rules, so it is one candidate, not a bypass.

        Raises:
            PeerRefused, AllPeersBusy, InsufficientCredit (every peer answered 402), AllPeersFailed,
            and what :meth:`candidates` raises.
        """
        attempts = _Attempts()
        with _Recording(self, call) as record:
            for candidate in [peer] if peer is not None else self.candidates(call.model, call.tier):
                with self.health.attempt(candidate.pubkey):
                    started = time.perf_counter()
                    reply = await self._send(call, candidate, attempts)
                    if reply is None:
                        continue
                    first_byte_ms = _ms_since(started)
                    try:
                        body = await reply.read()
                    except PeerUnreachable as exc:
                        self._failed(candidate, f"answer broke off: {exc.message}", attempts)
                        continue
                    finally:
                        reply.release()
                elapsed = _ms_since(started)
                self.health.succeeded(candidate.pubkey, elapsed, elapsed)
                record.peer, record.first_byte_s = candidate.name, first_byte_ms / 1000
                return Answer(candidate, reply.status, reply.headers, body)
            raise attempts.give_up()

    @asynccontextmanager
    async def stream(self, call: Call) -> AsyncIterator[Stream]:
        """The first 2xx answer to ``call``, committed, for relaying inside the ``with`` block.

        Failover happens only before the 2xx status line. The peer's health records a success
        when the block read the body to its end, a failure when the body broke off (see
        :meth:`Stream.chunks`), and nothing when the client went away.

        Raises:
            PeerRefused, AllPeersBusy, InsufficientCredit (every peer answered 402), AllPeersFailed,
            and what :meth:`candidates` raises.
        """
        attempts = _Attempts()
        with _Recording(self, call) as record:
            for peer in self.candidates(call.model, call.tier):
                with self.health.attempt(peer.pubkey):
                    started = time.perf_counter()
                    reply = await self._send(call, peer, attempts)
                    if reply is None:
                        continue
                    stream = Stream(peer, reply.status, reply.headers, reply, self.health, started)
                    record.peer = peer.name
                    try:
                        yield stream
                    finally:
                        reply.release()
                        record.first_byte_s = None if stream.ttfb_ms is None else stream.ttfb_ms / 1000
                if stream.completed:
                    self.health.succeeded(peer.pubkey, stream.ttfb_ms or 0.0, _ms_since(started))
                else:
                    record.outcome = "cancelled"
                return
            raise attempts.give_up()

    def _report(self, record: CallRecord, started: float) -> None:
        """Hand ``record`` to ``on_call`` once the loop is through with this turn: the client's
        answer goes out first, the metrics' locks and buckets after it."""
        record.total_s = time.perf_counter() - started
        if self.on_call is not None:
            asyncio.get_running_loop().call_soon(self.on_call, record)

    async def _send(self, call: Call, peer: Peer, attempts: _Attempts) -> PeerReply | None:
        """One attempt: the peer's 2xx reply (body unread), or ``None`` to try the next peer.

        Raises:
            PeerRefused: the request's own fault; the caller stops trying.
        """
        try:
            if self.url_guard.needs_check(peer):  # (no coroutine per call for trusted peers)
                await self.url_guard.check(peer)
        except UnsafeUrl as exc:
            self._failed(peer, f"refused its URL: {exc.message}", attempts)
            return None
        headers = {
            "Content-Type": "application/json",
            **sign_request(self.identity, "POST", call.path, call.body, self._clock_ms()),
        }
        try:
            reply = await self.transport.request(peer, "POST", call.path, call.body, headers, self.timeouts)
        except PeerUnreachable as exc:
            self._failed(peer, exc.message, attempts)
            return None
        if 200 <= reply.status < 300:
            return reply
        try:
            raw = await reply.read()
        except PeerUnreachable:
            raw = b""
        finally:
            reply.release()
        status, body = reply.status, _error_body(raw)
        message = _error_message(status, body, raw)
        retry_after = retry_after_seconds(reply.headers.get("Retry-After"))
        if status == 429 or (status == 503 and retry_after is not None):
            attempts.add(peer, f"busy: {message}")
            attempts.busy_hints.append(retry_after or 1)
        elif status in _NOT_HERE:
            attempts.add(peer, message, status)
        elif status >= 500 or status == 408 or status < 400:
            self._failed(peer, message, attempts)
        else:
            self.health.responded(peer.pubkey)
            raise PeerRefused(status, message, body)
        return None

    def _failed(self, peer: Peer, message: str, attempts: _Attempts) -> None:
        attempts.failures += 1
        self.health.failed(peer.pubkey, message)
        attempts.add(peer, message)


class _Recording:
    """``with _Recording(dispatcher, call) as record``: a :class:`CallRecord` for the block to
    fill in, reported at its end with the outcome an exception out of the block means.

    A class rather than a generator-based context manager, as :meth:`HealthBook.attempt`: the
    request path's layers are each a few microseconds of the router's added latency.
    """

    __slots__ = ("_dispatcher", "_record", "_started")

    def __init__(self, dispatcher: Dispatcher, call: Call) -> None:
        self._dispatcher, self._started = dispatcher, time.perf_counter()
        self._record = CallRecord(call.model, call.path)

    def __enter__(self) -> CallRecord:
        return self._record

    def __exit__(self, kind: object, exc: BaseException | None, tb: object) -> None:
        if exc is not None:
            self._record.outcome = _outcome_of(exc)
        self._dispatcher._report(self._record, self._started)


def retry_after_seconds(value: str | None) -> int | None:
    """A ``Retry-After`` header in whole seconds (RFC 9110 §10.2.3: delay-seconds; an
    HTTP-date is read as 1 s), or ``None`` when absent or unreadable."""
    if value is None:
        return None
    value = value.strip()
    if value.isdigit():
        return max(1, min(int(value), 3600))
    return 1 if value else None


def _outcome_of(exc: BaseException) -> str:
    """The :class:`CallRecord` outcome an exception out of a call means."""
    outcomes: tuple[tuple[type[BaseException], str], ...] = (
        (PeerRefused, "refused"), (InsufficientCredit, "refused"), (AllPeersBusy, "busy"), (AllPeersFailed, "failed"),
        (PeerFailedMidStream, "failed"),
        (ModelNotFound, "no_model"), (NoPeers, "unavailable"), (NoCapablePeer, "unavailable"), (LobstahError, "error"),
    )
    return next((outcome for kind, outcome in outcomes if isinstance(exc, kind)), "cancelled")


def _error_body(raw: bytes) -> dict[str, Any] | None:
    """The peer's error body when it has the OpenAI shape ``{"error": {"message", ...}}``."""
    try:
        body = json.loads(raw)
    except (ValueError, UnicodeDecodeError, RecursionError):
        return None
    if isinstance(body, dict) and isinstance(body.get("error"), dict) and isinstance(body["error"].get("message"), str):
        return body
    return None


def _error_message(status: int, body: dict[str, Any] | None, raw: bytes) -> str:
    if body is not None:
        error = body["error"]
        return f"{status} {error.get('type', 'error')}: {error['message']}"
    return f"{status} {raw[:120].decode('utf-8', 'replace')}".strip()


def _ms_since(started: float) -> float:
    return (time.perf_counter() - started) * 1000
