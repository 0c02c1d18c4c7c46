"""Talking to a tracker: announce, unannounce, and read its peer list."""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp

from ..errors import LobstahError, MalformedMessage
from ..protocol.announcements import SignedAnnouncement, Unannounce
from ..protocol.wire import parse_json

__all__ = ["TrackerError", "TrackerClient"]


class TrackerError(LobstahError):
    """A tracker could not be reached or refused what we sent."""

    type = "tracker_error"
    status = 502


class TrackerClient:
    """One tracker, over a session the caller owns."""

    def __init__(self, session: aiohttp.ClientSession, url: str, timeout: float = 10.0) -> None:
        self.session = session
        self.url = url.rstrip("/")
        self._timeout = aiohttp.ClientTimeout(total=timeout)

    async def announce(self, signed: SignedAnnouncement) -> dict[str, Any]:
        return await self._post("/announce", signed.to_wire())

    async def unannounce(self, body: Unannounce) -> dict[str, Any]:
        return await self._post("/unannounce", body.model_dump())

    async def announcements(self) -> list[Any]:
        """The raw (unverified) signed announcements the tracker lists."""
        body = await self._call("GET", "/peers", None)
        peers = body.get("peers") if isinstance(body, dict) else None
        if not isinstance(peers, list):
            raise TrackerError(f"{self.url}/peers did not answer with a peer list")
        return peers

    async def _post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        return await self._call("POST", path, body)

    async def _call(self, method: str, path: str, body: dict[str, Any] | None) -> Any:
        try:
            async with self.session.request(method, self.url + path, json=body, timeout=self._timeout) as response:
                try:
                    answer = parse_json(await response.read())
                except MalformedMessage:
                    answer = None
                if response.status >= 400:
                    error = answer.get("error", {}) if isinstance(answer, dict) else {}
                    why = error.get("reason") or error.get("message") or error.get("type") or response.reason
                    raise TrackerError(f"tracker {self.url} refused {path}: {why}", reason=why)
                return answer
        except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
            raise TrackerError(f"cannot reach tracker {self.url}: {exc or type(exc).__name__}") from None
