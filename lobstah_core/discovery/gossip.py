"""Nostr gossip: read announcement events from relays and check both of their signatures."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

import aiohttp

from ..errors import LobstahError, ProtocolError
from ..protocol.nostr import ANNOUNCEMENT_KIND, announcement_of, verify_event
from .nostr_relay import RelayClient

__all__ = ["gossip"]


async def gossip(
    relays: Sequence[str], *, idle: float = 8.0, hard: float = 30.0
) -> tuple[list[Any], list[tuple[str, str]]]:
    """Signed announcements found on ``relays`` (Nostr signatures checked; the Lobstah ones are
    checked when they are merged), and what was refused with why."""
    rejected: list[tuple[str, str]] = []
    async with aiohttp.ClientSession() as session:
        results = await asyncio.gather(
            *(RelayClient(session, relay, idle=idle, hard=hard).query({"kinds": [ANNOUNCEMENT_KIND]}) for relay in relays),
            return_exceptions=True,
        )
    announcements: list[Any] = []
    seen: set[str] = set()
    for relay, result in zip(relays, results, strict=True):
        if isinstance(result, BaseException):
            message = result.message if isinstance(result, LobstahError) else str(result)
            rejected.append((relay, message))
            continue
        for raw in result:
            try:
                event = verify_event(raw)
                if event.id in seen:
                    continue
                seen.add(event.id)
                announcements.append(announcement_of(event))
            except ProtocolError as exc:
                rejected.append((f"event {_event_name(raw)}", exc.message))
    return announcements, rejected


def _event_name(raw: Any) -> str:
    """The start of a refused event's id, whatever the event holds there."""
    event_id = raw.get("id") if isinstance(raw, dict) else None
    return event_id[:16] if isinstance(event_id, str) else "?"
