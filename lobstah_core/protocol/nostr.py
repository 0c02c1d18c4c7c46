"""Nostr events (NIP-01) carrying Lobstah announcements, and their BIP-340 signatures.

An announcement travels as a kind-31474 parameterized replaceable event whose content is the
JSON of the signed announcement; the event itself is signed by the node's secp256k1 Nostr key
(kept beside the Ed25519 identity). A withdrawal is a NIP-09 kind-5 event naming the
announcement event. Readers check both signatures: Nostr's and Lobstah's.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

import coincurve
from pydantic import BaseModel, Field, StrictInt, ValidationError

from ..errors import InvalidSignature, MalformedMessage
from .announcements import SignedAnnouncement
from .wire import EpochMs, parse_json

__all__ = [
    "ANNOUNCEMENT_KIND",
    "DELETION_KIND",
    "NostrEvent",
    "nostr_pubkey",
    "new_nostr_secret",
    "sign_event",
    "verify_event",
    "announcement_event",
    "withdrawal_event",
    "announcement_of",
]

ANNOUNCEMENT_KIND = 31474
DELETION_KIND = 5
_HEX64 = r"^[0-9a-f]{64}$"


class NostrEvent(BaseModel):
    """A NIP-01 event."""

    id: str = Field(pattern=_HEX64)
    pubkey: str = Field(pattern=_HEX64)
    #: Seconds since the epoch (NIP-01); bounded like every wire integer.
    created_at: EpochMs
    #: NIP-01 kinds are 0–65535.
    kind: StrictInt = Field(ge=0, le=65535)
    tags: list[list[str]]
    content: str
    sig: str = Field(pattern=r"^[0-9a-f]{128}$")


def new_nostr_secret() -> bytes:
    """A fresh secp256k1 secret key (32 bytes)."""
    return coincurve.PrivateKey().secret


def nostr_pubkey(secret: bytes) -> str:
    """The x-only public key (64 hex) of a secp256k1 secret."""
    return coincurve.PrivateKey(secret).public_key_xonly.format().hex()


def _event_id(pubkey: str, created_at: int, kind: int, tags: list[list[str]], content: str) -> str:
    # NIP-01: sha256 of the compact UTF-8 JSON of [0, pubkey, created_at, kind, tags, content].
    serial = json.dumps([0, pubkey, created_at, kind, tags, content], separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(serial.encode("utf-8")).hexdigest()


def sign_event(secret: bytes, created_at: int, kind: int, tags: list[list[str]], content: str) -> NostrEvent:
    """A signed event (``created_at`` in seconds since the epoch)."""
    pubkey = nostr_pubkey(secret)
    event_id = _event_id(pubkey, created_at, kind, tags, content)
    sig = coincurve.PrivateKey(secret).sign_schnorr(bytes.fromhex(event_id)).hex()
    return NostrEvent(id=event_id, pubkey=pubkey, created_at=created_at, kind=kind, tags=tags, content=content, sig=sig)


def verify_event(raw: Any) -> NostrEvent:
    """Check an event's id and BIP-340 signature.

    Raises:
        MalformedMessage: not an event.
        InvalidSignature: the id or the signature does not match.
    """
    try:
        event = NostrEvent.model_validate(raw)
    except ValidationError:
        raise MalformedMessage("not a valid Nostr event") from None
    if _event_id(event.pubkey, event.created_at, event.kind, event.tags, event.content) != event.id:
        raise InvalidSignature("Nostr event id does not match its content")
    try:
        valid = coincurve.PublicKeyXOnly(bytes.fromhex(event.pubkey)).verify(bytes.fromhex(event.sig), bytes.fromhex(event.id))
    except ValueError:
        valid = False
    if not valid:
        raise InvalidSignature("Nostr event signature does not verify")
    return event


def announcement_event(secret: bytes, signed: SignedAnnouncement, created_at: int) -> NostrEvent:
    """The kind-31474 event publishing ``signed``."""
    tags = [["d", "lobstah-peer"], ["t", "lobstah"], ["lobstah_pubkey", signed.announcement.pubkey]]
    content = json.dumps(signed.to_wire(), separators=(",", ":"))
    return sign_event(secret, created_at, ANNOUNCEMENT_KIND, tags, content)


def withdrawal_event(secret: bytes, announcement_id: str, created_at: int) -> NostrEvent:
    """The NIP-09 deletion of an announcement event."""
    return sign_event(secret, created_at, DELETION_KIND, [["e", announcement_id]], "lobstah unannounce")


def announcement_of(event: NostrEvent) -> Any:
    """The signed-announcement JSON an announcement event carries (not yet verified).

    Raises:
        MalformedMessage: the wrong kind, or content that is not JSON.
    """
    if event.kind != ANNOUNCEMENT_KIND:
        raise MalformedMessage(f"kind {event.kind} is not a Lobstah announcement")
    try:
        return parse_json(event.content)
    except MalformedMessage as exc:
        raise MalformedMessage(f"announcement event content is {exc.message}") from None
