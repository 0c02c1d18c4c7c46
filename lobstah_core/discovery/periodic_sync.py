"""Periodic peer sync from trackers and/or Nostr relays: the switch behind the TUI's *Sync*.

Off until started; each round merges what every source lists into the peer list, and
``last_result`` says what the last round did (for the TUI, ``serve`` logs and status).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence

import aiohttp

from ..errors import LobstahError
from ..protocol.url_safety import UrlPolicy
from ..router.peers import PeerStore
from ..tasks import cancel_and_wait
from .gossip import gossip
from .merge import SyncReport, merge_announcements
from .tracker_client import TrackerClient

__all__ = ["PeriodicSync"]


class PeriodicSync:
    """Syncs ``store`` from ``trackers`` and ``relays`` every ``interval`` seconds while on."""

    def __init__(
        self,
        store: PeerStore,
        policy: UrlPolicy,
        clock_ms: Callable[[], int],
        *,
        trackers: Sequence[str] = (),
        relays: Sequence[str] = (),
        interval: float = 300.0,
        gossip_idle: float = 8.0,
    ) -> None:
        self.store, self.policy, self._clock_ms = store, policy, clock_ms
        self.trackers, self.relays = list(trackers), list(relays)
        self.interval, self.gossip_idle = interval, gossip_idle
        self._task: asyncio.Task[None] | None = None
        self.last_result = "off"
        self.last_report: SyncReport | None = None

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    def start(self) -> None:
        """Turn the switch on: a round now, then one every ``interval`` seconds."""
        if not self.running:
            self._task = asyncio.create_task(self._loop())

    async def stop(self) -> None:
        """Turn the switch off (a round in progress is abandoned)."""
        await cancel_and_wait(self._task)
        self._task = None
        self.last_result = f"off ({self.last_result})" if not self.last_result.startswith("off") else self.last_result

    async def run_once(self) -> SyncReport:
        """One round over every source; each source's peers are merged under its own name."""
        report = SyncReport()
        from_trackers: list[object] = []
        if self.trackers:
            async with aiohttp.ClientSession() as session:
                for tracker in self.trackers:
                    try:
                        from_trackers.extend(await TrackerClient(session, tracker).announcements())
                    except LobstahError as exc:
                        report.rejected.append((tracker, exc.message))
        from_nostr: list[object] = []
        if self.relays:
            from_nostr, refused = await gossip(self.relays, idle=self.gossip_idle)
            report.rejected.extend(refused)
        for found, source in ((from_trackers, "tracker"), (from_nostr, "nostr")):
            if found:
                merged = await merge_announcements(found, self.store, source, self.policy, self._clock_ms())  # type: ignore[arg-type]
                report.added += [p for p in merged.added if p not in report.added + report.refreshed]
                report.refreshed += [p for p in merged.refreshed if p not in report.added + report.refreshed]
                report.rejected.extend(merged.rejected)
        self.last_report = report
        self.last_result = (f"added {len(report.added)}, refreshed {len(report.refreshed)}, "
                            f"rejected {len(report.rejected)}")
        return report

    async def _loop(self) -> None:
        while True:
            await self.run_once()
            await asyncio.sleep(self.interval)
