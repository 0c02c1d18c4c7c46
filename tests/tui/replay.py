"""A recorded grid for snapshot tests: a fixed snapshot and events, replayed into the app.

It offers the surface the dashboard uses of a Node, so the screen can be rendered without a
live backend (ports, timings and keys would differ on every run).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from lobstah_core.errors import SwitchRefused
from lobstah_core.events import EventBus, event_from_json
from lobstah_core.node_view import BatchView, NodeSnapshot, PeerView
from lobstah_core.protocol.schemas import Balance


class ReplayNode:
    """A :class:`~lobstah_core.node_view.NodeView` that replays a recording."""

    def __init__(self, recording: Path) -> None:
        self.recording: dict[str, Any] = json.loads(recording.read_text(encoding="utf-8"))
        self.bus = EventBus()
        self.pubkey: str = self.recording["pubkey"]
        self.router_url: str | None = self.recording["routerUrl"]

    async def start(self) -> None:
        self._replayed = False

    def _replay(self) -> None:
        for body in self.recording["events"]:
            event = event_from_json(body)
            assert event is not None, body
            self.bus.publish(event)

    async def stop(self) -> None:
        return None

    async def snapshot(self, recent: int = 50) -> NodeSnapshot:
        shot = self.recording["snapshot"]
        balance = shot["balance"]
        if not getattr(self, "_replayed", True):
            # Events come after the first snapshot has been shown, as receipts do on a live node;
            # that first snapshot holds the balance from before them.
            self._replayed = True
            balance = shot["balanceBefore"]
            asyncio.get_running_loop().call_later(0.3, self._replay)
        peers = tuple(PeerView(**{**p, "models": tuple(p["models"])}) for p in shot["peers"])
        return NodeSnapshot(self.pubkey, self.router_url, None, None, peers, None,
                            Balance.model_validate(balance), (), tuple(shot["advertise"]), tuple(shot["sync"]))

    async def batches(self, limit: int = 20) -> tuple[BatchView, ...]:
        return tuple(BatchView.from_wire(batch) for batch in self.recording.get("batches", [])[:limit])

    async def set_advertise(self, on: bool) -> None:
        raise SwitchRefused("a recording cannot advertise")

    async def set_sync(self, on: bool) -> None:
        raise SwitchRefused("a recording cannot sync")

    async def chat_stream(self, model: str, prompt: str) -> AsyncIterator[str]:
        for word in ("a", " recorded", " answer"):
            yield word

