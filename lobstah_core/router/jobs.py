"""``/v1/jobs`` on the router: submit to a peer (batch tier preferred), poll, cancel.

Submission fails over like a chat request. Polls go to the peer that took the job; the first
poll that finds it ``done`` hands its receipt to the receipt desk. What the client sees carries
the router's job id and never the worker's ``signedReceipt``.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

from aiohttp import web

from ..engines.base import usage_of
from ..errors import NotFound
from ..protocol.identity import Identity
from ..protocol.request_signing import sign_request
from ..timeouts import Timeouts
from .job_map import JobMap
from .peers import Peer
from .dispatch import Call, Dispatcher
from .receipts import ReceiptDesk
from .transport import PeerTransport, PeerUnreachable

__all__ = ["RouterJobs"]

_JOBS_PATH = "/v1/jobs"
#: A poll or cancel is a quick read of the worker's job store.
_POLL_TIMEOUTS = Timeouts(connect_s=5.0, first_byte_s=10.0, idle_s=10.0, total_s=10.0)


class RouterJobs:
    def __init__(
        self,
        identity: Identity,
        dispatcher: Dispatcher,
        transport: PeerTransport,
        desk: ReceiptDesk,
        job_map: JobMap,
        clock_ms: Callable[[], int],
    ) -> None:
        self.identity, self.dispatcher, self.transport = identity, dispatcher, transport
        self.desk, self.job_map, self._clock_ms = desk, job_map, clock_ms

    async def submit(self, raw: bytes, model: str) -> web.Response:
        answer = await self.dispatcher.fetch(Call(_JOBS_PATH, raw, model, "batch"))
        body, peer = _peer_json(answer.body, answer.peer), answer.peer
        if not isinstance(body.get("jobId"), str):
            raise PeerUnreachable(f"peer {peer.name} accepted the job without a jobId")
        created = body.get("createdAt")
        created = created if isinstance(created, int) else self._clock_ms()
        mapped = await asyncio.to_thread(self.job_map.create, peer.pubkey, body["jobId"], created)
        return web.json_response({**body, "jobId": mapped.job_id}, status=202)

    async def poll(self, job_id: str) -> web.Response:
        mapped, peer = await self._find(job_id)
        status, body = await self._call(peer, "GET", f"{_JOBS_PATH}/{mapped.worker_job_id}")
        if status != 200:
            return web.Response(body=body, status=status, content_type="application/json")
        record = _peer_json(body, peer)
        signed = record.pop("signedReceipt", None)
        if record.get("status") == "done" and signed is not None and not mapped.ledgered:
            if await asyncio.to_thread(self.job_map.mark_ledgered, job_id):
                result = record.get("result")
                # Checked against the usage the worker reported with it (reason "inflated"); a
                # job may be fetched long after it was done, so not for freshness.
                usage = usage_of(result) if isinstance(result, dict) else None
                self.desk.accept_later(signed, peer.pubkey, usage, fresh=False)
        return web.json_response({**record, "jobId": job_id})

    async def cancel(self, job_id: str) -> web.Response:
        mapped, peer = await self._find(job_id)
        status, body = await self._call(peer, "DELETE", f"{_JOBS_PATH}/{mapped.worker_job_id}")
        if status == 200:
            await asyncio.to_thread(self.job_map.forget, job_id)
            return web.json_response({"jobId": job_id, "cancelled": True})
        return web.Response(body=body, status=status, content_type="application/json")

    async def _find(self, job_id: str) -> tuple[Any, Peer]:
        mapped = await asyncio.to_thread(self.job_map.get, job_id)
        if mapped is None:
            raise NotFound(f"no job {job_id!r} on this router")
        peer = self.dispatcher.directory.peers.get(mapped.peer)
        if peer is None:
            raise PeerUnreachable(f"the peer that took job {job_id!r} is no longer in the peer list")
        return mapped, peer

    async def _call(self, peer: Peer, method: str, path: str) -> tuple[int, bytes]:
        headers = sign_request(self.identity, method, path, b"", self._clock_ms())
        try:
            reply = await self.transport.request(peer, method, path, None, headers, _POLL_TIMEOUTS)
            try:
                return reply.status, await reply.read()
            finally:
                reply.release()
        except PeerUnreachable as exc:
            raise PeerUnreachable(f"peer {peer.name}: {exc.message}") from None


def _peer_json(body: bytes, peer: Peer) -> dict[str, Any]:
    """A peer's JSON object answer.

    Raises:
        PeerUnreachable: not a JSON object (or nested past any sane depth): the peer's fault.
    """
    try:
        value = json.loads(body)
    except (ValueError, RecursionError):
        value = None
    if not isinstance(value, dict):
        raise PeerUnreachable(f"peer {peer.name} answered with something that is not a JSON object")
    return value
