"""The tracker's registry of signed announcements, each alive for its own TTL.

Trackers are deliberately dumb: they verify what they are given, keep the newest announcement
per pubkey until it goes stale, and hand the signed originals to anyone who asks (clients verify
them again). Caps keep a hostile announcer from filling memory: label, model list, URL length,
and the number of live entries.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass

from ..errors import InvalidSignature, LobstahError, MalformedMessage, StaleMessage
from ..protocol.announcements import (
    SignedAnnouncement,
    announcement_status,
    verify_announcement,
    verify_unannounce,
)

__all__ = ["Registry", "Rejected", "TrackerFull", "Limits"]


class Rejected(LobstahError):
    """An announcement refused: ``reason`` is bad-signature, stale, future or too-large."""

    type = "rejected"
    status = 400

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message, reason=reason)
        self.reason = reason


class TrackerFull(LobstahError):
    type = "tracker_full"
    status = 503


@dataclass(frozen=True)
class Limits:
    max_entries: int = 10_000
    max_label: int = 64
    max_models: int = 64
    max_model_name: int = 128
    max_url: int = 512


class Registry:
    """Live announcements by pubkey."""

    def __init__(self, clock_ms: Callable[[], int], limits: Limits | None = None) -> None:
        self._clock_ms = clock_ms
        self.limits = limits or Limits()
        #: pubkey -> (announcement, its JSON text as served by GET /peers)
        self._entries: dict[str, tuple[SignedAnnouncement, str]] = {}
        self._pruned_at = -1_000

    def announce(self, body: object) -> SignedAnnouncement:
        """Verify and register an announcement (replacing an older one of the same pubkey).

        Raises:
            Rejected: bad signature, stale, future, or over a size cap.
            TrackerFull: a new pubkey while the registry is at its cap.
        """
        try:
            signed = verify_announcement(body)  # type: ignore[arg-type]
        except InvalidSignature:
            raise Rejected("bad-signature", "the announcement's signature does not verify") from None
        except MalformedMessage as exc:
            raise Rejected("malformed", exc.message) from None
        self._check_size(signed)
        announcement = signed.announcement
        status = announcement_status(announcement, self._clock_ms())
        if status != "ok":
            raise Rejected(status, f"the announcement is {status}")
        known = self._entries.get(announcement.pubkey)
        if known is not None and known[0].announcement.announced_at > announcement.announced_at:
            return known[0]  # an older copy arriving late changes nothing
        if known is None and self.live_count() >= self.limits.max_entries:
            raise TrackerFull(f"this tracker holds its maximum of {self.limits.max_entries} peers")
        self._entries[announcement.pubkey] = (signed, json.dumps(signed.to_wire(), separators=(",", ":")))
        return signed

    def unannounce(self, body: object) -> bool:
        """Remove a pubkey's announcement on its signed request; ``True`` if one was there.

        Raises:
            Rejected: bad signature or a timestamp more than 5 minutes from now.
        """
        try:
            request = verify_unannounce(body, self._clock_ms())  # type: ignore[arg-type]
        except InvalidSignature:
            raise Rejected("bad-signature", "the unannounce signature does not verify") from None
        except StaleMessage:
            raise Rejected("stale", "the unannounce timestamp is more than 5 minutes from now") from None
        except MalformedMessage as exc:
            raise Rejected("malformed", exc.message) from None
        return self._entries.pop(request.pubkey, None) is not None

    def live(self) -> list[SignedAnnouncement]:
        """Every announcement not yet stale."""
        self._prune(force=True)
        return [signed for signed, _ in self._entries.values()]

    def live_json(self) -> list[str]:
        """The JSON text of every live announcement, as kept since it was announced."""
        self._prune(force=True)
        return [text for _, text in self._entries.values()]

    def live_count(self) -> int:
        """How many announcements are live (stale ones may linger up to a second)."""
        self._prune()
        return len(self._entries)

    def _prune(self, force: bool = False) -> None:
        # A full scan at most once a second keeps announce O(1) with 10,000 live peers.
        now = self._clock_ms()
        if not force and now - self._pruned_at < 1000:
            return
        self._pruned_at = now
        stale = [k for k, (v, _) in self._entries.items() if announcement_status(v.announcement, now) == "stale"]
        for pubkey in stale:
            del self._entries[pubkey]

    def _check_size(self, signed: SignedAnnouncement) -> None:
        announcement, limits = signed.announcement, self.limits
        if len(announcement.url) > limits.max_url:
            raise Rejected("too-large", f"url is longer than {limits.max_url} characters")
        if announcement.label is not None and len(announcement.label) > limits.max_label:
            raise Rejected("too-large", f"label is longer than {limits.max_label} characters")
        models = announcement.models or []
        if len(models) > limits.max_models or any(len(m) > limits.max_model_name for m in models):
            raise Rejected("too-large", f"at most {limits.max_models} models of {limits.max_model_name} characters")
