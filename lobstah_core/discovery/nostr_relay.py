"""A minimal Nostr relay client over websockets (aiohttp): publish, and query with REQ/EOSE.

``publish`` waits for the relay's ``OK``; ``query`` collects events until EOSE, or until the
relay has been quiet for ``idle`` seconds, within a hard limit, then sends ``CLOSE``.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import Any

import aiohttp

from ..errors import LobstahError, MalformedMessage
from ..protocol.nostr import NostrEvent
from ..protocol.wire import parse_json

__all__ = ["RelayError", "RelayClient", "DEFAULT_RELAYS"]

DEFAULT_RELAYS = ("wss://relay.damus.io", "wss://nos.lol", "wss://relay.nostr.band")


class RelayError(LobstahError):
    type = "relay_error"
    status = 502


class RelayClient:
    """One relay, one websocket per operation."""

    def __init__(self, session: aiohttp.ClientSession, url: str, *, idle: float = 8.0, hard: float = 30.0) -> None:
        self.session, self.url, self.idle, self.hard = session, url, idle, hard

    async def publish(self, event: NostrEvent) -> None:
        """Send an event and wait for the relay to accept it.

        Raises:
            RelayError: unreachable, no answer in time, or ``OK false`` with the relay's reason.
        """
        try:
            async with asyncio.timeout(self.hard), self.session.ws_connect(self.url) as socket:
                await socket.send_str(json.dumps(["EVENT", event.model_dump()]))
                async for message in socket:
                    frame = _frame(message)
                    if frame[:2] == ["OK", event.id]:
                        if len(frame) > 2 and frame[2] is True:
                            return
                        raise RelayError(f"relay {self.url} refused the event: {frame[3] if len(frame) > 3 else ''}")
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise RelayError(f"relay {self.url}: {exc or 'no answer in time'}") from None
        raise RelayError(f"relay {self.url} closed without answering")

    async def query(self, filters: dict[str, Any]) -> list[Any]:
        """Raw events matching ``filters`` (unverified)."""
        subscription = uuid.uuid4().hex[:16]
        events: list[Any] = []
        try:
            async with asyncio.timeout(self.hard), self.session.ws_connect(self.url) as socket:
                await socket.send_str(json.dumps(["REQ", subscription, filters]))
                while True:
                    try:
                        message = await asyncio.wait_for(socket.receive(), self.idle)
                    except TimeoutError:
                        break  # quiet for `idle` seconds: nothing more is coming
                    if message.type != aiohttp.WSMsgType.TEXT:
                        break
                    frame = _frame(message)
                    if frame[:2] == ["EVENT", subscription] and len(frame) > 2:
                        events.append(frame[2])
                    elif frame[:2] == ["EOSE", subscription]:
                        break
                await socket.send_str(json.dumps(["CLOSE", subscription]))
        except (aiohttp.ClientError, TimeoutError) as exc:
            if not events:
                raise RelayError(f"relay {self.url}: {exc or 'no answer in time'}") from None
        return events


def _frame(message: aiohttp.WSMessage) -> list[Any]:
    if message.type != aiohttp.WSMsgType.TEXT:
        return []
    try:
        frame = parse_json(message.data)
    except MalformedMessage:  # one unreadable frame costs that frame, not the relay's others
        return []
    return frame if isinstance(frame, list) else []
