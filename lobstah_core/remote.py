"""A headless node seen from another process (``lobstah-tui --attach URL``).

It offers what the TUI uses of a :class:`~lobstah_core.node.Node` — an event bus, snapshots,
test prompts — over the router's HTTP API: ``/events`` feeds the bus, ``/peers`` and
``/balance`` make the snapshot, ``/v1/batches`` lists the batches. The switches belong to the headless node's own command line,
so flipping them from here is refused with a reason.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

import httpx

from .errors import LobstahError, SwitchRefused
from .events import EventBus, event_from_json
from .node_view import BatchView, NodeSnapshot, PeerView, chat_stream_text
from .protocol.schemas import Balance
from .tasks import cancel_and_wait

__all__ = ["RemoteNode"]


class RemoteNode:
    """The router at ``url`` of a node running elsewhere (``lobstah-core serve``)."""

    def __init__(self, url: str, api_key: str | None = None) -> None:
        """
        Args:
            api_key: the router's ``--api-key``, when it has one.
        """
        self.url = url.rstrip("/")
        self._headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self.bus = EventBus()
        self.pubkey = ""  # learned from the node on start
        self.router_url: str | None = self.url
        self._client: httpx.AsyncClient | None = None
        self._reader: asyncio.Task[None] | None = None
        self.last_error: str | None = None

    async def start(self) -> None:
        """Connect: learn the node's key and start following its events.

        Raises:
            LobstahError: nothing answers at the URL, or it wants an API key we lack.
        """
        self._client = httpx.AsyncClient(base_url=self.url, headers=self._headers, timeout=httpx.Timeout(10, read=None))
        try:
            self.pubkey = (await self._client.get("/pubkey")).json()["pubkey"]
            refused = (await self._client.get("/balance")).status_code == 401
        except (httpx.HTTPError, ValueError, KeyError):
            await self._client.aclose()
            raise LobstahError(f"no Lobstah router answers at {self.url}") from None
        if refused:
            await self._client.aclose()
            raise LobstahError(f"the router at {self.url} wants its API key (--api-key KEY)")
        self._reader = asyncio.create_task(self._follow())

    async def stop(self) -> None:
        await cancel_and_wait(self._reader)
        if self._client is not None:
            await self._client.aclose()

    async def snapshot(self, recent: int = 50) -> NodeSnapshot:
        assert self._client is not None
        peers = tuple(PeerView.from_wire(entry) for entry in (await self._client.get("/peers")).json())
        balance = Balance.model_validate((await self._client.get("/balance")).json())
        detached = (False, "set on the headless node (lobstah-core serve --advertise / --sync)")
        return NodeSnapshot(self.pubkey, self.url, None, None, peers, None, balance, (), detached, detached)

    async def batches(self, limit: int = 20) -> tuple[BatchView, ...]:
        """The router's newest batches (none from a router without the Batch API, or when the
        call fails: the ``batch.*`` events still come)."""
        assert self._client is not None
        try:
            response = await self._client.get("/v1/batches", params={"limit": limit})
            if response.status_code != 200:
                return ()
            return tuple(BatchView.from_wire(batch) for batch in response.json()["data"])
        except (httpx.HTTPError, ValueError, KeyError, TypeError) as exc:
            self.last_error = str(exc) or type(exc).__name__
            return ()

    async def set_advertise(self, on: bool) -> None:
        raise SwitchRefused("attached to a headless node: flip advertising there (lobstah-core serve --advertise)")

    async def set_sync(self, on: bool) -> None:
        raise SwitchRefused("attached to a headless node: flip syncing there (lobstah-core serve --sync)")

    async def chat_stream(self, model: str, prompt: str) -> AsyncIterator[str]:
        assert self._client is not None
        body = {"model": model, "stream": True, "messages": [{"role": "user", "content": prompt}]}
        async with self._client.stream("POST", "/v1/chat/completions", json=body) as response:
            if response.status_code != 200:
                await response.aread()
                raise LobstahError(response.json().get("error", {}).get("message", f"router answered {response.status_code}"))
            async for text in chat_stream_text(response.aiter_lines()):
                yield text

    async def _follow(self) -> None:
        assert self._client is not None
        while True:
            try:
                async with self._client.stream("GET", "/events") as response:
                    self.last_error = None
                    async for line in response.aiter_lines():
                        if line.startswith("data: "):
                            event = event_from_json(json.loads(line[6:]))
                            if event is not None:
                                self.bus.publish(event)
            except (httpx.HTTPError, ValueError) as exc:
                self.last_error = str(exc) or type(exc).__name__
            await asyncio.sleep(1.0)  # the node restarted or the network blinked: reconnect
