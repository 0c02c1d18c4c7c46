"""Announcements: a worker's signed "I am here, at this URL, serving these models".

Trackers and Nostr relays carry them; every client verifies each one it reads. Withdrawal is a
separate signed ``unannounce`` message over the string ``unannounce:<pubkey>:<timestamp>``.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, StrictInt

from ..errors import MalformedMessage, StaleMessage
from .identity import Identity, verify_signature
from .canonical import MAX_SAFE_INTEGER
from .wire import (
    EpochMs,
    HexSignature,
    Pubkey,
    WireModel,
    parse_model,
    sign_object,
    verify_object,
)

__all__ = [
    "Tier",
    "AnnouncementStatus",
    "Announcement",
    "SignedAnnouncement",
    "Unannounce",
    "FUTURE_SKEW_MS",
    "DEFAULT_TTL_SECONDS",
    "MIN_TTL_SECONDS",
    "MAX_TTL_SECONDS",
    "sign_announcement",
    "verify_announcement",
    "announcement_status",
    "sign_unannounce",
    "verify_unannounce",
]

Tier = Literal["interactive", "batch", "best-effort"]
AnnouncementStatus = Literal["ok", "stale", "future"]

#: An announcement (or unannounce) dated further ahead than this is refused.
FUTURE_SKEW_MS = 300_000
DEFAULT_TTL_SECONDS = 300
#: The TTL a tracker grants, whatever was asked (as the JS tracker on Cloudflare does).
MIN_TTL_SECONDS = 60
MAX_TTL_SECONDS = 600


class Announcement(WireModel, extra="allow"):
    """Where a worker can be reached and what it serves, valid for ``ttl_seconds``."""

    version: Literal[1]
    pubkey: Pubkey
    url: str = Field(min_length=1)
    label: str | None = None
    models: list[str] | None = None
    tier: Tier | None = None
    #: As asked; bounded so that the expiry in milliseconds stays a safe integer.
    ttl_seconds: StrictInt = Field(gt=0, le=MAX_SAFE_INTEGER // 2000)
    #: Milliseconds since the epoch.
    announced_at: EpochMs

    @property
    def granted_ttl_seconds(self) -> int:
        """The TTL clamped to 60–600 s: what a tracker grants, and how long we trust it."""
        return min(max(self.ttl_seconds, MIN_TTL_SECONDS), MAX_TTL_SECONDS)

    def expires_at(self) -> int:
        """Milliseconds since the epoch when this announcement goes stale (granted TTL)."""
        return self.announced_at + self.granted_ttl_seconds * 1000


class SignedAnnouncement(WireModel):
    """An announcement with its worker's signature."""

    announcement: Announcement
    signature: HexSignature


class Unannounce(WireModel):
    """The body of ``POST /unannounce``: a signed withdrawal of ``pubkey``'s announcement."""

    pubkey: Pubkey
    timestamp: EpochMs
    signature: HexSignature


def sign_announcement(
    announcement: Announcement | dict[str, Any], identity: Identity
) -> SignedAnnouncement:
    """Sign ``announcement`` with the announcing worker's ``identity``.

    Raises:
        MalformedMessage: the announcement is not valid, or is for another pubkey.
    """
    model = parse_model(Announcement, announcement)
    if model.pubkey != identity.pubkey:
        raise MalformedMessage("an announcement can only be signed by its own pubkey")
    return SignedAnnouncement(announcement=model, signature=sign_object(model.to_wire(), identity))


def verify_announcement(signed: SignedAnnouncement | dict[str, Any]) -> SignedAnnouncement:
    """Check the signature of a signed announcement and return it as a model.

    Raises:
        MalformedMessage: not a well-formed signed announcement.
        InvalidSignature: the signature does not verify.
    """
    model = parse_model(SignedAnnouncement, signed)
    body = model.announcement
    verify_object(body.pubkey, body.to_wire(), model.signature)
    return model


def announcement_status(announcement: Announcement, now_ms: int) -> AnnouncementStatus:
    """``future`` if dated over 5 min ahead, ``stale`` once its TTL has passed, else ``ok``.

    The TTL is the granted one (60–600 s, WIRE.md "Trackers clamp ttlSeconds"): an
    announcement asking for 10^12 s still goes stale after 10 minutes.
    """
    if announcement.announced_at - now_ms > FUTURE_SKEW_MS:
        return "future"
    if now_ms - announcement.announced_at > announcement.granted_ttl_seconds * 1000:
        return "stale"
    return "ok"


def _unannounce_message(pubkey: str, timestamp: int) -> bytes:
    return f"unannounce:{pubkey}:{timestamp}".encode()


def sign_unannounce(identity: Identity, now_ms: int) -> Unannounce:
    """The signed withdrawal of ``identity``'s announcement, dated ``now_ms``."""
    signature = identity.sign_hex(_unannounce_message(identity.pubkey, now_ms))
    return Unannounce(pubkey=identity.pubkey, timestamp=now_ms, signature=signature)


def verify_unannounce(body: Unannounce | dict[str, Any], now_ms: int) -> Unannounce:
    """Check an unannounce body's signature and that its timestamp is within 5 min of now.

    Raises:
        MalformedMessage, InvalidSignature, StaleMessage.
    """
    model = parse_model(Unannounce, body)
    if abs(now_ms - model.timestamp) > FUTURE_SKEW_MS:
        raise StaleMessage("unannounce timestamp is more than 5 minutes from now")
    verify_signature(model.pubkey, _unannounce_message(model.pubkey, model.timestamp), model.signature)
    return model
