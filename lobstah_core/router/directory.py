"""The router's view of its peers: the list from ``peers.json``, and each one's capacity.

Capacity (models, queue depth, tier) is refreshed in the background every ``interval`` seconds,
at most ``max_probes`` at once, at most one per peer in flight, each with a 2 s timeout. A failed
probe counts as a failure of the peer in its health (a stopped process is excluded without a
request having to wait for it), and the background loop asks a peer that keeps failing ever less
often: after n failures in a row, every ``interval × 2^(n-1)`` seconds, at most every
:data:`PROBE_BACKOFF_MAX_S` (a thousand stale discovered peers would otherwise cost a probe, a
failure and an event each every ``interval``). The request path only reads what is cached. The peer file is re-read when it changes, so
``lobstah-core peers add`` takes effect on a running router.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable, Coroutine
from typing import Any

from pydantic import ValidationError

from ..events import CapacityChanged, EventBus
from ..node_view import PeerView
from ..protocol.model_names import lists_model
from ..protocol.schemas import Capacity
from ..tasks import cancel_and_wait
from ..timeouts import Timeouts
from .health import HealthBook
from .peers import Peer, PeerListError, PeerStore
from .transport import PeerTransport, PeerUnreachable

__all__ = ["PeerDirectory", "PROBE_BACKOFF_MAX_S"]

log = logging.getLogger("lobstah.router")
#: The longest a peer whose probes keep failing waits for its next one, in seconds.
PROBE_BACKOFF_MAX_S = 120.0
#: An age no probe result ever reaches: refresh(older_than_ms=_NEVER) probes only unprobed peers.
_NEVER = 2**62


class PeerDirectory:
    """Peers, their health, and their capacity, kept current in the background."""

    def __init__(
        self,
        store: PeerStore,
        health: HealthBook,
        transport: PeerTransport,
        bus: EventBus,
        clock_ms: Callable[[], int],
        *,
        interval: float = 15.0,
        probe_timeout: float = 2.0,
        max_probes: int = 8,
    ) -> None:
        self.store, self.health, self.transport, self.bus = store, health, transport, bus
        self._clock_ms = clock_ms
        self.interval, self.probe_timeout = interval, probe_timeout
        self._probe_slots = asyncio.Semaphore(max_probes)
        self._probes: dict[str, asyncio.Task[None]] = {}
        self._mtime: float | None = -1.0
        self.peers: dict[str, Peer] = {}
        self.load_error: str | None = None
        #: The node's own worker, when the router runs in a node that has one (see serve_self).
        self.own: Peer | None = None
        #: Per peer whose last probe failed: when the background loop may probe it again (ms).
        self._next_probe_ms: dict[str, int] = {}
        #: Seconds between two rounds of the background loop.
        self.tick_s = 1.0
        self._refreshes: set[asyncio.Task[None]] = set()

    def serve_self(self, worker: Peer) -> None:
        """Make the node's own ``worker`` a peer whatever peers.json says (and probe it now).

        It takes the place of an entry with the same key in peers.json: a node that once had to
        ``peers add`` its own key keeps working. No credit moves between a node and itself: the
        receipt has the same key on both sides, so earned and spent grow alike and net stays.
        """
        self.own = worker
        self._put_own_first()
        self._probes[worker.pubkey] = asyncio.create_task(self._probe(worker))

    def _put_own_first(self) -> None:
        if self.own is not None:
            others = {key: peer for key, peer in self.peers.items() if key != self.own.pubkey}
            self.peers = {self.own.pubkey: self.own, **others}

    def reload(self) -> bool:
        """Re-read peers.json if it changed (a file that cannot be read keeps the last good list;
        an entry that is not a peer costs only itself).

        Returns:
            Whether peers appeared that have never been probed.
        """
        mtime = self.store.mtime()
        if mtime == self._mtime:
            return False
        self._mtime = mtime
        try:
            peers, problems = self.store.load_usable()
        except PeerListError as exc:
            self.load_error = exc.message
            log.error("%s; keeping the previous peer list", exc.message)
            return False
        self.load_error = "; ".join(problems) or None
        for problem in problems:
            log.error("%s; the other peers are used", problem)
        self.peers = {peer.pubkey: peer for peer in peers}
        self._put_own_first()
        return any(self.health.of(peer.pubkey).capacity_at is None for peer in peers)

    def active(self) -> list[Peer]:
        """Peers to use now (discovered ones drop out when their announcement expires)."""
        now = self._clock_ms()
        return [peer for peer in self.peers.values() if not peer.expired(now)]

    def views(self) -> list[PeerView]:
        """The active peers with their health now, as the dashboard and ``GET /peers`` show them."""
        now = self._clock_ms()
        views = []
        for peer in self.active():
            state = self.health.of(peer.pubkey)
            capacity = state.capacity
            views.append(PeerView(
                peer.pubkey, peer.label, peer.url, peer.source,
                tuple(capacity.models) if capacity else (), capacity.tier if capacity else None,
                "excluded" if state.excluded(now) else "healthy", state.excluded_until,
                state.consecutive_failures, capacity.queue_depth if capacity else None,
                state.in_flight, state.ttfb_ms, state.total_ms, state.last_error, state.capacity_error,
                peer.expires_at, tuple(capacity.embedding_models or ()) if capacity else (),
            ))
        return views

    def capable(self, model: str) -> list[Peer]:
        """Active, non-excluded peers whose cached capacity lists ``model``."""
        now = self._clock_ms()
        found = []
        for peer in self.peers.values():
            state = self.health.of(peer.pubkey)
            if state.capacity and lists_model(state.capacity.models, model) and not state.excluded(now) and not peer.expired(now):
                found.append(peer)
        return found

    async def refresh(self, older_than_ms: int = 0, *, back_off: bool = False) -> None:
        """Probe every active peer whose capacity is older than ``older_than_ms``; wait for them.

        Args:
            back_off: leave out peers whose failed probes make them wait (module docstring).
        """
        now = self._clock_ms()
        tasks = []
        for peer in self.active():
            state = self.health.of(peer.pubkey)
            if state.capacity_at is not None and now - state.capacity_at < older_than_ms:
                continue
            if back_off and now < self._next_probe_ms.get(peer.pubkey, 0):
                continue
            task = self._probes.get(peer.pubkey)
            if task is None or task.done():
                task = self._probes[peer.pubkey] = asyncio.create_task(self._probe(peer))
            tasks.append(task)
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)

    async def run(self) -> None:
        """The background loop: follow peers.json, lift exclusions, refresh capacity, once every
        ``tick_s``. A round that fails is logged and the next one goes on: the loop must not
        end while the router runs (peers.json changes, probes and lifted exclusions hang on it)."""
        last_refresh = float("-inf")
        loop = asyncio.get_running_loop()
        while True:
            try:
                if self.reload():
                    # Peers just added (e.g. `lobstah-core peers add`) are probed now, not next round.
                    self._in_background(self.refresh(older_than_ms=_NEVER, back_off=True))
                self.health.sweep()
                if loop.time() - last_refresh >= self.interval:
                    last_refresh = loop.time()
                    self._in_background(self.refresh(back_off=True))
            except Exception:
                log.exception("the peer directory's round failed; the next one is in %g s", self.tick_s)
            await asyncio.sleep(self.tick_s)

    def _in_background(self, refresh: Coroutine[Any, Any, None]) -> None:
        """Run ``refresh`` as a task held here (the loop keeps only weak references to tasks)."""
        task = asyncio.create_task(refresh)
        self._refreshes.add(task)
        task.add_done_callback(self._refreshes.discard)

    async def close(self) -> None:
        tasks = [*self._refreshes, *self._probes.values()]
        await asyncio.gather(*(cancel_and_wait(task) for task in tasks))

    async def _probe(self, peer: Peer) -> None:
        state = self.health.of(peer.pubkey)
        async with self._probe_slots:
            try:
                limit = self.probe_timeout
                reply = await self.transport.request(
                    peer, "GET", "/capacity", timeouts=Timeouts(limit, limit, limit, limit)
                )
                try:
                    body = await asyncio.wait_for(reply.read(), limit)
                finally:
                    reply.release()
                if reply.status != 200:
                    raise PeerUnreachable(f"/capacity answered {reply.status}")
                capacity = Capacity.model_validate(json.loads(body))
            except (PeerUnreachable, asyncio.TimeoutError, ValueError, ValidationError) as exc:
                state.capacity_error = getattr(exc, "message", None) or str(exc) or "timed out"
                # A peer that cannot say what it serves (stopped, hung, gone) will not serve a
                # request either: the failure counts toward its exclusion.
                self.health.failed(peer.pubkey, f"capacity probe: {state.capacity_error}")
                self._back_off(peer.pubkey, state.consecutive_failures)
                return
        if capacity.pubkey != peer.pubkey:
            state.capacity_error = "answers with another pubkey than the peer list says"
            state.capacity = None
            return
        self._next_probe_ms.pop(peer.pubkey, None)
        previous = state.capacity
        state.capacity, state.capacity_at, state.capacity_error = capacity, self._clock_ms(), None
        if previous is None or (previous.models, previous.queue_depth, previous.tier) != (
            capacity.models, capacity.queue_depth, capacity.tier
        ):
            self.bus.publish(CapacityChanged(self._clock_ms(), peer.pubkey, tuple(capacity.models), capacity.queue_depth, capacity.tier))

    def _back_off(self, pubkey: str, failures: int) -> None:
        """After ``failures`` in a row, the next probe waits interval × 2^(failures-1) seconds."""
        wait_s = min(self.interval * 2 ** min(max(failures - 1, 0), 16), PROBE_BACKOFF_MAX_S)
        self._next_probe_ms[pubkey] = self._clock_ms() + int(wait_s * 1000)
