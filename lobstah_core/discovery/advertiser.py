"""Advertising a worker on a tracker: announce at start, heartbeat, unannounce on shutdown."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

import aiohttp

from ..protocol.announcements import Announcement, sign_announcement, sign_unannounce
from ..protocol.identity import Identity
from .tracker_client import TrackerClient, TrackerError

__all__ = ["Advertiser", "heartbeat_seconds"]

log = logging.getLogger("lobstah.discovery")


def heartbeat_seconds(ttl_seconds: int) -> float:
    """Re-announce every max(ttl/2, 30 s), as the JS workers do."""
    return max(ttl_seconds / 2, 30.0)


class Advertiser:
    """Keeps one worker's announcement alive on one tracker."""

    def __init__(
        self,
        identity: Identity,
        tracker_url: str,
        announce_url: str,
        models: Callable[[], Awaitable[list[str]]],
        clock_ms: Callable[[], int],
        *,
        label: str | None = None,
        tier: str | None = None,
        ttl_seconds: int = 300,
    ) -> None:
        self.identity, self.tracker_url, self.announce_url = identity, tracker_url, announce_url
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
        """Stop the heartbeat and withdraw the announcement."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._session is None:
            return
        try:
            await TrackerClient(self._session, self.tracker_url).unannounce(sign_unannounce(self.identity, self._clock_ms()))
            self.last_result = f"withdrawn from {self.tracker_url}"
        except TrackerError as exc:
            self.last_result = f"could not withdraw: {exc.message}"
            log.warning(self.last_result)
        finally:
            await self._session.close()
            self._session = None

    async def announce(self) -> bool:
        """Announce once; ``False`` (and a logged reason) if the tracker could not be told."""
        assert self._session is not None
        body = {
            "version": 1, "pubkey": self.identity.pubkey, "url": self.announce_url,
            "models": await self._models(), "ttlSeconds": self.ttl_seconds, "announcedAt": self._clock_ms(),
        }
        if self.label:
            body["label"] = self.label
        if self.tier:
            body["tier"] = self.tier
        signed = sign_announcement(Announcement.model_validate(body), self.identity)
        try:
            answer = await TrackerClient(self._session, self.tracker_url).announce(signed)
        except TrackerError as exc:
            self.last_result = f"announce failed: {exc.message}"
            log.warning(self.last_result)
            return False
        self.last_result = f"announced to {self.tracker_url} ({answer.get('registeredCount', '?')} peers there)"
        return True

    async def _heartbeat(self) -> None:
        while True:
            await asyncio.sleep(heartbeat_seconds(self.ttl_seconds))
            await self.announce()
