"""The cargo scheduler: the requests of every batch spread over every capable peer.

Each peer gets as many *slots* as the concurrency it reports on ``/capacity`` (2 when it does
not say); a slot takes the oldest pending request whose model the peer lists, sends it to that
peer through the dispatch core (:meth:`Dispatcher.fetch` with ``peer=``, so the blame rules are
the same as for a chat request) and takes the next one when the answer is in. Faster peers
come back sooner and so take more. Only at the end of the line does speed count: a slower
peer leaves the last requests to faster ones that would finish them all before it finished one.

What an answer means for the request (WIRE.md "[ext] who is to blame"):

- 2xx: its body goes to the output file; the receipt is settled as a chat answer's is
  (:func:`fetch_with_receipt`: checked against the answer's usage, pulled by reconciliation when
  missing; one answer, one receipt: a request is sent again only after an attempt that brought
  no answer).
- :class:`PeerRefused` (the request's own 4xx): its error body goes to the error file; no retry.
- busy (429, 503 + Retry-After): back to the front of the line; the peer's slots wait as asked.
- 402 (the peer holds our credit as used up): back to the line, the peer's slots wait
  :data:`CREDIT_HOLD_S`; when every peer for the batch's model says so, the batch shows
  ``paused_reason`` instead of failing its requests one by one.
- a failure (connection, 5xx, timeout): back to the line for another peer (the health book
  excludes a peer that fails twice); after :data:`MAX_ATTEMPTS` failures the request goes to
  the error file.

A request's outcome is stored before anything else is done with it, so a router stopped at any
moment re-sends, on start, exactly the requests without a stored outcome. Statuses follow
OpenAI's lifecycle: validating → in_progress → finalizing → completed, or expired when the
``completion_window`` ran out, or cancelling → cancelled.
"""

from __future__ import annotations

import asyncio
import json
from collections import Counter, deque
from collections.abc import Callable
from typing import Any

from ..errors import LobstahError
from ..events import BatchProgressed, BatchStatusChanged, EventBus
from ..protocol.model_names import lists_model
from ..protocol.schemas import Capacity
from ..tasks import cancel_and_wait
from .batch_store import BatchStore, PendingItem, file_object, new_id
from .dispatch import AllPeersBusy, Answer, Call, Dispatcher, PeerRefused
from .peers import Peer
from .relay import Settlement, fetch_with_receipt
from .state import EMBEDDINGS_PATH

__all__ = ["BatchScheduler", "MAX_ATTEMPTS", "CREDIT_HOLD_S", "DEFAULT_CONCURRENCY"]

#: Failed attempts after which a request goes to the error file.
MAX_ATTEMPTS = 5
#: Seconds a peer that refused us for credit (402) is left alone.
CREDIT_HOLD_S = 30.0
#: Slots for a peer whose ``/capacity`` does not report its concurrency (the worker default).
DEFAULT_CONCURRENCY = 2
#: Seconds a slot waits after a failure, so that another peer's slot takes the request.
_FAILURE_PAUSE_S = 1.0
#: Seconds between two looks for work of an idle slot, and between two supervisor rounds.
_IDLE_S = 0.1
_TICK_S = 0.5

_EXPIRED = {"code": "batch_expired", "message": "This request could not be executed before the completion window expired."}
_CANCELLED = {"code": "batch_cancelled", "message": "This request was not executed: the batch was cancelled."}


class BatchScheduler:
    """Runs the batches of one :class:`BatchStore` over the peers of one dispatcher."""

    def __init__(
        self,
        store: BatchStore,
        dispatcher: Dispatcher,
        settlement: Settlement,
        bus: EventBus,
        clock_ms: Callable[[], int],
    ) -> None:
        self.store, self.dispatcher, self.settlement, self.bus = store, dispatcher, settlement, bus
        self._clock_ms = clock_ms
        #: Pending requests of every batch being worked on, oldest batch first.
        self._lines: dict[str, deque[PendingItem]] = {}
        #: Lines of each batch out at a peer right now.
        self._out: dict[str, set[int]] = {}
        #: How each batch ends once nothing is out any more: completed, expired or cancelled.
        self._ending: dict[str, str] = {}
        self._failures: Counter[tuple[str, int]] = Counter()
        #: Per peer: milliseconds until which its slots wait, and why (credit, busy).
        self._holds: dict[str, tuple[int, str]] = {}
        self._paused: dict[str, str | None] = {}
        #: ``request_counts`` of each batch being worked on, kept up to date for the events.
        self._counts: dict[str, dict[str, int]] = {}
        #: Requests of each batch being worked on answered so far, by peer (for the events).
        self._per_peer: dict[str, Counter[str]] = {}
        self._slots: dict[tuple[str, int], asyncio.Task[None]] = {}
        #: Set while some batch has pending requests: idle slots wait on it instead of polling
        #: (a router with many peers has thousands of slots, and nothing to do most of the time).
        self._work = asyncio.Event()
        self._supervisor: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Resume every batch left unfinished (the requests in flight when the router
        stopped are pending again) and start placing requests."""
        for batch_id in await asyncio.to_thread(self.store.active_batch_ids):
            await self.submit(batch_id)
        self._supervisor = asyncio.create_task(self._supervise())

    async def stop(self) -> None:
        """Stop placing requests; those in flight are dropped and stay pending in the store."""
        await cancel_and_wait(self._supervisor)
        for task in list(self._slots.values()):
            await cancel_and_wait(task)
        self._slots.clear()

    async def submit(self, batch_id: str) -> None:
        """Start (or resume) the stored batch ``batch_id``."""
        batch = await asyncio.to_thread(self.store.batch, batch_id)
        assert batch is not None
        status = batch["status"]
        self._counts[batch_id] = dict(batch["request_counts"])
        self._per_peer[batch_id] = Counter(batch["items_per_peer"])
        if status == "validating":
            await self._set_status(batch_id, "in_progress", in_progress_at=self._now_s())
        if status in ("validating", "in_progress"):
            self._lines[batch_id] = deque(await asyncio.to_thread(self.store.pending_items, batch_id))
            self._work.set()
            self._ending[batch_id] = "completed"
        elif status == "cancelling":
            self._ending[batch_id] = "cancelled"
            await self._settle_rest(batch_id, _CANCELLED)
        else:  # finalizing
            self._ending[batch_id] = batch.get("lobstah_ending", "completed")
        await self._finish_if_done(batch_id)

    async def cancel(self, batch_id: str) -> dict[str, Any]:
        """Stop a batch: its pending requests go to the error file as cancelled; the batch is
        ``cancelling`` until the requests in flight are back, then ``cancelled``."""
        batch = await self._set_status(batch_id, "cancelling", cancelling_at=self._now_s())
        self._ending[batch_id] = "cancelled"
        await self._settle_rest(batch_id, _CANCELLED)
        await self._finish_if_done(batch_id)
        return await asyncio.to_thread(self.store.batch, batch_id) or batch

    # Slots

    async def _slot(self, pubkey: str, index: int) -> None:
        """One of a peer's slots: take a request, send it, store the outcome, again."""
        while True:
            peer = self.dispatcher.directory.peers.get(pubkey)
            if peer is None or index >= self._slots_for(pubkey):
                return
            if not any(self._lines.values()):
                self._work.clear()
                await self._work.wait()
                continue
            wait_ms = self._hold_ms(pubkey)
            item = None if wait_ms or self._leave_to_faster(pubkey) else self._take(pubkey)
            if item is None:
                await asyncio.sleep(min(max(wait_ms / 1000, _IDLE_S), 1.0))
                continue
            try:
                await self._send(peer, item)
            finally:
                self._out[item.batch_id].discard(item.line)
            await self._finish_if_done(item.batch_id)

    def _leave_to_faster(self, pubkey: str) -> bool:
        """Whether the requests left are better left to faster peers: they would finish all
        of them before this peer finished one (each peer's time per request is its last
        call's ``total_ms``). Without this, the batch's last requests can go to the slowest
        peer and the batch waits for it alone."""
        health = self.dispatcher.health
        mine = health.of(pubkey).total_ms
        if mine is None:
            return False
        per_ms = 0.0
        for peer in self.dispatcher.directory.active():
            theirs = health.of(peer.pubkey).total_ms
            if theirs and theirs < mine and not self._hold_ms(peer.pubkey):
                per_ms += self._slots_for(peer.pubkey) / theirs
        return sum(len(line) for line in self._lines.values()) < mine * per_ms

    def _take(self, pubkey: str) -> PendingItem | None:
        """The oldest pending request whose model the peer lists (removed from its line)."""
        capacity = self.dispatcher.health.of(pubkey).capacity
        if capacity is None:
            return None
        for batch_id, line in self._lines.items():
            for position, item in enumerate(line):
                if _serves(capacity, item):
                    del line[position]
                    self._out.setdefault(batch_id, set()).add(item.line)
                    return item
        return None

    async def _send(self, peer: Peer, item: PendingItem) -> None:
        """One attempt of ``item`` at ``peer``, and what its outcome means (module docstring)."""
        call = Call(item.url, item.body, item.model, "batch")
        try:
            # The work was done and charged whatever became of the batch meanwhile: its receipt
            # is settled before the outcome is stored.
            answer = await fetch_with_receipt(self.dispatcher, self.settlement, call, peer=peer)
        except PeerRefused as exc:
            response = {"status_code": exc.status, "request_id": new_id("req_"), "body": exc.to_body()}
            await self._settle(item, "error", _outcome(item, response=response), peer.pubkey)
        except AllPeersBusy as exc:
            self._hold(peer.pubkey, exc.retry_after * 1000, f"busy: {exc.message}")
            await self._put_back(item)
        except LobstahError as exc:
            statuses = {error.get("status") for error in exc.details.get("errors", [])}
            if 402 in statuses:
                self._hold(peer.pubkey, int(CREDIT_HOLD_S * 1000), f"no credit: {exc.message}")
                await self._put_back(item)
            elif statuses & {401, 403, 404}:
                self._hold(peer.pubkey, int(CREDIT_HOLD_S * 1000), exc.message)
                await self._put_back(item)
            else:
                await self._failed(peer, item, exc.message)
        else:
            await self._succeeded(peer, item, answer)

    async def _succeeded(self, peer: Peer, item: PendingItem, answer: Answer) -> None:
        try:
            body: Any = json.loads(answer.body)
        except ValueError:
            body = answer.body.decode("utf-8", "replace")
        request_id = answer.headers.get("x-request-id") or new_id("req_")
        response = {"status_code": answer.status, "request_id": request_id, "body": body}
        self._holds.pop(peer.pubkey, None)
        await self._settle(item, "done", _outcome(item, response=response), peer.pubkey)

    async def _failed(self, peer: Peer, item: PendingItem, message: str) -> None:
        key = (item.batch_id, item.line)
        self._failures[key] += 1
        if self._failures[key] >= MAX_ATTEMPTS:
            error = {"code": "all_peers_failed", "message": f"{MAX_ATTEMPTS} attempts failed; the last: {message}"}
            await self._settle(item, "error", _outcome(item, error=error), None)
        else:
            await self._put_back(item)
        await asyncio.sleep(_FAILURE_PAUSE_S)

    async def _put_back(self, item: PendingItem) -> None:
        """Back to the front of its batch's line; or, when the batch was cancelled or expired
        while the request was out, to the error file as the rest of the batch went."""
        line = self._lines.get(item.batch_id)
        if line is not None:
            line.appendleft(item)
            self._work.set()
        else:
            error = _CANCELLED if self._ending.get(item.batch_id) == "cancelled" else _EXPIRED
            await self._settle(item, "error", _outcome(item, error=error), None)

    async def _settle(self, item: PendingItem, state: str, outcome: dict[str, Any], peer: str | None) -> bool:
        stored = await asyncio.to_thread(self.store.settle, item.batch_id, item.line, state, outcome, peer)
        self._failures.pop((item.batch_id, item.line), None)
        counts, per_peer = self._counts.get(item.batch_id), self._per_peer.get(item.batch_id)
        if stored and counts is not None and per_peer is not None:
            counts["completed" if state == "done" else "failed"] += 1
            if state == "done" and peer is not None:
                per_peer[peer] += 1
            self.bus.publish(BatchProgressed(
                self._clock_ms(), item.batch_id, counts["completed"], counts["failed"], counts["total"], peer,
                per_peer[peer] if peer is not None else 0,
            ))
        return stored

    # Peers

    def _slots_for(self, pubkey: str) -> int:
        capacity = self.dispatcher.health.of(pubkey).capacity
        if capacity is None:
            return 0
        return capacity.concurrency or DEFAULT_CONCURRENCY

    def _hold(self, pubkey: str, for_ms: int, reason: str) -> None:
        self._holds[pubkey] = (self._clock_ms() + for_ms, reason)

    def _hold_ms(self, pubkey: str) -> int:
        """Milliseconds the peer's slots still wait: excluded after failures, or held."""
        now = self._clock_ms()
        until = max(self.dispatcher.health.of(pubkey).excluded_until, self._holds.get(pubkey, (0, ""))[0])
        return max(0, until - now)

    # Batches

    async def _supervise(self) -> None:
        """Keep each peer's slots at its concurrency; expire batches; say why a batch waits."""
        while True:
            for peer in self.dispatcher.directory.active():
                for index in range(self._slots_for(peer.pubkey)):
                    task = self._slots.get((peer.pubkey, index))
                    if task is None or task.done():
                        self._slots[(peer.pubkey, index)] = asyncio.create_task(self._slot(peer.pubkey, index))
            for batch_id in list(self._lines):
                await self._expire_or_explain(batch_id)
            await asyncio.sleep(_TICK_S)

    async def _expire_or_explain(self, batch_id: str) -> None:
        batch = await asyncio.to_thread(self.store.batch, batch_id)
        if batch is None:
            return
        if batch["status"] == "in_progress" and self._now_s() >= batch["expires_at"]:
            self._ending[batch_id] = "expired"
            await self._settle_rest(batch_id, _EXPIRED)
            await self._finish_if_done(batch_id)
            return
        reason = self._why_waiting(batch_id)
        if reason != self._paused.get(batch_id):
            self._paused[batch_id] = reason
            await asyncio.to_thread(self.store.update_batch, batch_id, paused_reason=reason)
            self._publish_status(batch, reason)

    def _why_waiting(self, batch_id: str) -> str | None:
        """Why no peer takes the batch's pending requests, or ``None`` when some peer can."""
        line = self._lines.get(batch_id)
        if not line:
            return None
        model = line[0].model
        holders = [
            peer.pubkey for peer in self.dispatcher.directory.active()
            if (capacity := self.dispatcher.health.of(peer.pubkey).capacity) and _serves(capacity, line[0])
        ]
        if not holders:
            return f"no reachable peer serves model {model!r}; waiting for one"
        if all(self._hold_ms(p) for p in holders):
            held = [self._holds[p][1] for p in holders if p in self._holds and self._holds[p][0] > self._clock_ms()]
            if held and all(reason.startswith("no credit") for reason in held) and len(held) == len(holders):
                return f"paused: every peer serving {model!r} says our credit is used up ({held[0]}); resumes when credit is available"
            return f"every peer serving {model!r} is excluded or busy; waiting"
        return None

    async def _settle_rest(self, batch_id: str, error: dict[str, Any]) -> None:
        """Give every request not yet sent ``error`` (expiry, cancellation); those out at a
        peer get their answer when it comes."""
        self._lines.pop(batch_id, None)
        out = set(self._out.get(batch_id, ()))
        await asyncio.to_thread(
            self.store.settle_pending, batch_id, lambda custom_id: _outcome_for(custom_id, error=error), out
        )

    async def _finish_if_done(self, batch_id: str) -> None:
        """Write the output and error files once no request of the batch is pending or out."""
        if self._lines.get(batch_id) or self._out.get(batch_id) or batch_id not in self._ending:
            return
        ending = self._ending.pop(batch_id)
        self._lines.pop(batch_id, None)
        self._paused.pop(batch_id, None)
        self._out.pop(batch_id, None)
        self._counts.pop(batch_id, None)
        self._per_peer.pop(batch_id, None)
        await self._set_status(batch_id, "finalizing", finalizing_at=self._now_s(), lobstah_ending=ending, paused_reason=None)
        files = {}
        for state, key in (("done", "output_file_id"), ("error", "error_file_id")):
            content = await asyncio.to_thread(self.store.outcome_lines, batch_id, state)
            if content:
                file_id = new_id("file-")
                name = f"{batch_id}_{'output' if state == 'done' else 'error'}.jsonl"
                file = file_object(file_id, name, len(content), self._now_s(), "batch_output")
                await asyncio.to_thread(self.store.add_file, file, content)
                files[key] = file_id
        stamp = {"completed": "completed_at", "expired": "expired_at", "cancelled": "cancelled_at"}[ending]
        await self._set_status(batch_id, ending, **{stamp: self._now_s()}, **files)

    async def _set_status(self, batch_id: str, status: str, **fields: Any) -> dict[str, Any]:
        batch = await asyncio.to_thread(self.store.update_batch, batch_id, status=status, **fields)
        self._publish_status(batch, batch.get("paused_reason"))
        return batch

    def _publish_status(self, batch: dict[str, Any], reason: str | None) -> None:
        counts = batch["request_counts"]
        self.bus.publish(BatchStatusChanged(
            self._clock_ms(), batch["id"], batch["status"], counts["completed"], counts["failed"], counts["total"], reason
        ))

    def _now_s(self) -> int:
        return self._clock_ms() // 1000


def _serves(capacity: Capacity, item: PendingItem) -> bool:
    """Whether a peer with ``capacity`` can answer ``item``: its model listed, and for an
    embeddings request listed as one that embeds when the peer says which do ([ext]
    ``embeddingModels``; a peer that does not say is tried, and a 404 from it costs no penalty)."""
    if item.url == EMBEDDINGS_PATH and capacity.embedding_models is not None:
        return lists_model(capacity.embedding_models, item.model)
    return lists_model(capacity.models, item.model)


def _outcome(item: PendingItem, **fields: Any) -> dict[str, Any]:
    return _outcome_for(item.custom_id, **fields)


def _outcome_for(custom_id: str, response: dict[str, Any] | None = None, error: dict[str, Any] | None = None) -> dict[str, Any]:
    """One line of an output or error file (OpenAI "Batch API: the request output object")."""
    return {"id": new_id("batch_req_"), "custom_id": custom_id, "response": response, "error": error}
