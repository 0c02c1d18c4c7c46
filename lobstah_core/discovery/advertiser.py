"""Advertising a worker: announce at start, heartbeat, withdraw on shutdown — on a tracker,
on Nostr relays, or both. Each place is a *channel*; the advertiser signs one announcement per
heartbeat and hands it to every channel."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Protocol

import aiohttp

from ..errors import LobstahError
from ..protocol.announcements import (
    Announcement,
    SignedAnnouncement,
    sign_announcement,
    sign_unannounce,
)
from ..protocol.identity import Identity
from ..protocol.nostr import announcement_event, withdrawal_event
from ..tasks import cancel_and_wait
from .nostr_relay import RelayClient
from .tracker_client import TrackerClient

__all__ = ["Advertiser", "Channel", "TrackerChannel", "NostrChannel", "heartbeat_seconds"]

log = logging.getLogger("lobstah.discovery")


def describe_reachability(answer: dict[str, Any], url: str) -> str:
    """What a tracker's ``POST /announce`` answer says of reachability ([ext]), as advice.

    Logged as a warning when nobody can reach ``url``: the operator must act on it.
    """
    if answer.get("reachable") is True:
        return "reachable"
    if answer.get("reachable") is None:
        return "reachability unknown (the tracker does not check)"
    why = answer.get("reachability") or "no reason given"
    log.warning("the tracker cannot reach %s: %s", url, why)
    return (f"NOT reachable: {why}; forward the port to this machine, or use an overlay such as "
            "Tailscale and announce that address")


def heartbeat_seconds(ttl_seconds: int) -> float:
    """Re-announce every max(ttl/2, 30 s), as the JS workers do."""
    return max(ttl_seconds / 2, 30.0)


class Channel(Protocol):
    """Somewhere an announcement is published."""

    async def announce(self, session: aiohttp.ClientSession, signed: SignedAnnouncement) -> str: ...

    async def withdraw(self, session: aiohttp.ClientSession) -> str: ...


class TrackerChannel:
    def __init__(self, url: str, identity: Identity, clock_ms: Callable[[], int]) -> None:
        self.url, self.identity, self._clock_ms = url, identity, clock_ms

    async def announce(self, session: aiohttp.ClientSession, signed: SignedAnnouncement) -> str:
        answer = await TrackerClient(session, self.url).announce(signed)
        line = f"announced to {self.url} ({answer.get('registeredCount', '?')} peers there)"
        return f"{line}; {describe_reachability(answer, signed.announcement.url)}"

    async def withdraw(self, session: aiohttp.ClientSession) -> str:
        await TrackerClient(session, self.url).unannounce(sign_unannounce(self.identity, self._clock_ms()))
        return f"withdrawn from {self.url}"


class NostrChannel:
    """Publishes kind-31474 events; withdraws with a NIP-09 deletion of the last one."""

    def __init__(self, relays: Sequence[str], secret: bytes, clock_ms: Callable[[], int]) -> None:
        self.relays, self._secret, self._clock_ms = list(relays), secret, clock_ms
        self._last_event_id: str | None = None

    async def announce(self, session: aiohttp.ClientSession, signed: SignedAnnouncement) -> str:
        event = announcement_event(self._secret, signed, self._clock_ms() // 1000)
        accepted = await self._publish(session, event)
        self._last_event_id = event.id
        # Relays store events; nobody calls the URL back, so nothing tells us who can reach it.
        return f"published to {accepted}/{len(self.relays)} Nostr relays; reachability unknown"

    async def withdraw(self, session: aiohttp.ClientSession) -> str:
        if self._last_event_id is None:
            return "nothing published on Nostr"
        accepted = await self._publish(session, withdrawal_event(self._secret, self._last_event_id, self._clock_ms() // 1000))
        return f"withdrawn from {accepted}/{len(self.relays)} Nostr relays"

    async def _publish(self, session: aiohttp.ClientSession, event: object) -> int:
        results = await asyncio.gather(
            *(RelayClient(session, relay).publish(event) for relay in self.relays),  # type: ignore[arg-type]
            return_exceptions=True,
        )
        failures = [r for r in results if isinstance(r, BaseException)]
        if len(failures) == len(results):
            raise failures[0] if isinstance(failures[0], LobstahError) else LobstahError(str(failures[0]))
        return len(results) - len(failures)


class Advertiser:
    """Keeps one worker's announcement alive on its channels."""

    def __init__(
        self,
        identity: Identity,
        channels: Sequence[Channel],
        announce_url: str,
        models: Callable[[], Awaitable[list[str]]],
        clock_ms: Callable[[], int],
        *,
        label: str | None = None,
        tier: str | None = None,
        ttl_seconds: int = 300,
    ) -> None:
        self.identity, self.channels, self.announce_url = identity, list(channels), announce_url
        self._models, self._clock_ms = models, clock_ms
        self.label, self.tier, self.ttl_seconds = label, tier, ttl_seconds
        self._session: aiohttp.ClientSession | None = None
        self._task: asyncio.Task[None] | None = None
        #: A line about the last attempt, for banners, logs and the TUI.
        self.last_result = "not started"

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    async def start(self) -> None:
        """Announce now, then keep re-announcing in the background."""
        self._session = aiohttp.ClientSession()
        await self.announce()
        self._task = asyncio.create_task(self._heartbeat())

    async def stop(self) -> None:
        """Stop the heartbeat and withdraw the announcement everywhere."""
        await cancel_and_wait(self._task)
        self._task = None
        if self._session is None:
            return
        self.last_result = await self._each(lambda channel, session: channel.withdraw(session), "could not withdraw")
        await self._session.close()
        self._session = None

    async def announce(self) -> None:
        """Sign a fresh announcement and publish it on every channel."""
        body = {
            "version": 1, "pubkey": self.identity.pubkey, "url": self.announce_url,
            "models": await self._models(), "ttlSeconds": self.ttl_seconds, "announcedAt": self._clock_ms(),
        }
        if self.label:
            body["label"] = self.label
        if self.tier:
            body["tier"] = self.tier
        signed = sign_announcement(Announcement.model_validate(body), self.identity)
        self.last_result = await self._each(lambda channel, session: channel.announce(session, signed), "announce failed")

    async def _each(self, action: Callable[[Channel, aiohttp.ClientSession], Awaitable[str]], failed: str) -> str:
        assert self._session is not None
        results = []
        for channel in self.channels:
            try:
                results.append(await action(channel, self._session))
            except LobstahError as exc:
                results.append(f"{failed}: {exc.message}")
                log.warning("%s: %s", failed, exc.message)
        return "; ".join(results)

    async def _heartbeat(self) -> None:
        while True:
            await asyncio.sleep(heartbeat_seconds(self.ttl_seconds))
            await self.announce()
