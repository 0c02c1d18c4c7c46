"""Reconciliation, router side (WIRE.md "[ext] reconciliation"): ask the workers we used for
the receipts they issued to us, and ledger the ones we lack.

A receipt can miss the router's ledger in three ways: the router was killed while it waited in
the desk's batch; the worker was killed or the stream broke after the worker committed it but
before it reached us; or the router gave up on a request the worker then finished. Workers
commit every receipt before sending it, so asking them afterwards finds all three.

Each peer has a cursor (``since``, ms): at start, the newest receipt our ledger holds from it
less :data:`START_OVERLAP_MS` (receipts lost in a crash are the newest ones, give or take the
batches in flight); after a pass, the newest receipt it served less :data:`SLACK_MS` (a worker
commits receipts in batches, so one completed a little earlier may be stored a little later).
Peers first used since start begin at the start. A pass runs at start, every
:data:`INTERVAL_S`, and soon after :meth:`Reconciler.recover_later` names a peer (a stream
whose receipt did not arrive).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from ..errors import LobstahError, ProtocolError
from ..events import EventBus, ReceiptsRecovered
from ..ledger import Ledger
from ..protocol.identity import Identity
from ..protocol.receipts import RECEIPT_WINDOW_MS
from ..protocol.reconciliation import MAX_PAGE, ReceiptPage, receipts_path
from ..protocol.request_signing import sign_request
from ..protocol.wire import parse_json, parse_model
from ..timeouts import Timeouts
from .directory import PeerDirectory
from .peers import Peer
from .receipts import ReceiptDesk
from .transport import PeerTransport
from .url_guard import PeerUrlGuard

__all__ = ["Reconciler", "INTERVAL_S", "START_OVERLAP_MS", "SLACK_MS"]

log = logging.getLogger("lobstah.router.reconcile")

#: Seconds between two passes over every peer used.
INTERVAL_S = 180.0
#: At start, how far before the newest receipt held from a peer its first pull begins.
START_OVERLAP_MS = 60_000
#: After a pass, how far before the newest receipt a peer served the next pull begins.
SLACK_MS = 5_000
#: Seconds a peer named by recover_later waits, so that a burst of misses makes one pull.
RECOVER_DELAY_S = 1.0
#: Seconds one page may take to arrive.
PAGE_TIMEOUT_S = 10.0


class Reconciler:
    """Pulls from the workers a router has used the receipts it lacks; one per router."""

    def __init__(
        self,
        identity: Identity,
        directory: PeerDirectory,
        transport: PeerTransport,
        desk: ReceiptDesk,
        ledger: Ledger,
        bus: EventBus,
        clock_ms: Callable[[], int],
        *,
        url_guard: PeerUrlGuard | None = None,
        interval: float = INTERVAL_S,
        page_size: int = MAX_PAGE,
    ) -> None:
        """
        Args:
            url_guard: the request-time URL check of discovered peers (the proxy's policy).
            interval: seconds between two passes over every peer used.
            page_size: receipts asked for per page (at most 1000).
        """
        self._identity, self._directory, self._transport = identity, directory, transport
        self._desk, self._ledger, self._bus, self._clock_ms = desk, ledger, bus, clock_ms
        self._url_guard = url_guard or PeerUrlGuard()
        self.interval = interval
        self._page_size = page_size
        #: Per peer pubkey: where its next pull begins (ms since the epoch).
        self.since: dict[str, int] = {}
        self._started_at = clock_ms()
        self._pending: set[str] = set()
        self._wakeup = asyncio.Event()
        self._lock = asyncio.Lock()

    async def start(self) -> None:
        """Set each used peer's cursor from the ledger (the newest receipt held from it)."""
        newest = await asyncio.to_thread(self._ledger.newest_from, self._identity.pubkey)
        for pubkey, completed_at in newest.items():
            self.since[pubkey] = max(completed_at - START_OVERLAP_MS, 0)

    async def run(self) -> None:
        """A pass now, then one every ``interval`` seconds, and one soon after each
        :meth:`recover_later`; until cancelled."""
        loop = asyncio.get_running_loop()
        next_pass = loop.time()
        while True:
            if loop.time() >= next_pass:
                await self.reconcile_all()
                next_pass = loop.time() + self.interval
            elif self._pending:
                await asyncio.sleep(RECOVER_DELAY_S)
                pending, self._pending = self._pending, set()
                for peer in self._used_peers(pending):
                    await self.reconcile(peer)
            self._wakeup.clear()
            if not self._pending:
                try:
                    await asyncio.wait_for(self._wakeup.wait(), max(next_pass - loop.time(), 0))
                except asyncio.TimeoutError:
                    pass

    def recover_later(self, peer: str) -> None:
        """Pull from ``peer`` (a pubkey) soon: call it after an answer from that peer whose
        receipt did not arrive (a stream cut off, a missing receipt comment). Never blocks."""
        self._pending.add(peer)
        self._wakeup.set()

    async def reconcile_all(self) -> dict[str, int]:
        """One pass over every peer used (in the ledger, or through the desk since start).

        Returns:
            Receipts recovered per peer pubkey (peers that could not be asked are left out).
        """
        used = set(self.since) | self._desk.peers
        return {peer.pubkey: await self.reconcile(peer) for peer in self._used_peers(used)}

    async def reconcile(self, peer: Peer) -> int:
        """Pull every page ``peer`` has for us from its cursor on and ledger what we lack.

        Returns:
            How many receipts were recovered; 0 also when the peer cannot be asked now (it is
            asked again next pass, from the same cursor).
        """
        async with self._lock:  # one pull at a time: cursors move in order
            since = self.since.get(peer.pubkey, max(self._started_at - START_OVERLAP_MS, 0))
            recovered = 0
            try:
                await self._url_guard.check(peer)
                while True:
                    page = await self._fetch(peer, since)
                    recovered += await self._desk.recover(page.receipts, peer.pubkey)
                    newest = _newest_completed_at(page.receipts, self._clock_ms() + RECEIPT_WINDOW_MS)
                    if newest is not None:
                        since = max(since, newest - SLACK_MS)
                    if page.next is None or page.next <= since:
                        break
                    since = page.next
            except LobstahError as exc:
                log.info("could not reconcile with %s: %s", peer.name, exc.message)
            self.since[peer.pubkey] = since
        if recovered:
            log.warning("recovered %d receipt(s) from %s by reconciliation", recovered, peer.name)
            self._bus.publish(ReceiptsRecovered(self._clock_ms(), peer.pubkey, recovered))
        return recovered

    def _used_peers(self, pubkeys: set[str]) -> list[Peer]:
        return [peer for peer in self._directory.active() if peer.pubkey in pubkeys]

    async def _fetch(self, peer: Peer, since: int) -> ReceiptPage:
        """One page of ``GET /v1/receipts``, signed as us.

        Raises:
            LobstahError: the peer is unreachable, refused, or answered something else.
        """
        path = receipts_path(since, self._page_size)
        headers = sign_request(self._identity, "GET", path, b"", self._clock_ms())
        limit = PAGE_TIMEOUT_S
        reply = await self._transport.request(peer, "GET", path, headers=headers, timeouts=Timeouts(limit, limit, limit, limit))
        try:
            body = await reply.read()
        finally:
            reply.release()
        if reply.status != 200:
            raise LobstahError(f"GET /v1/receipts answered {reply.status}")
        try:
            return parse_model(ReceiptPage, parse_json(body))
        except ProtocolError as exc:
            raise LobstahError(f"GET /v1/receipts answered no receipt page ({exc.message})") from None


def _newest_completed_at(served: list[object], latest_ms: int) -> int | None:
    """The largest plausible ``completedAt`` of a page (at most ``latest_ms``): its receipts
    are not checked yet, and a date far ahead must not carry the cursor past real ones."""
    times = [
        item["receipt"]["completedAt"]
        for item in served
        if isinstance(item, dict)
        and isinstance(item.get("receipt"), dict)
        and type(item["receipt"].get("completedAt")) is int
        and item["receipt"]["completedAt"] <= latest_ms
    ]
    return max(times) if times else None
