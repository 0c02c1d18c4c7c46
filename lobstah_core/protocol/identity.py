"""Ed25519 identities: ``lob1`` public keys, signing, and the JS-compatible ``identity.json``.

The secret key is the 32-byte Ed25519 seed; the public key string is ``lob1`` followed by the 64
lowercase hex digits of the raw public key. Signatures are 128 lowercase hex digits.

This module is pure: :meth:`Identity.to_json` and :meth:`Identity.from_json` convert to and from
the file's text; reading and writing the file (mode 0600) is :mod:`lobstah_core.identity_file`.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from functools import cached_property, lru_cache
from typing import Any

from nacl.exceptions import BadSignatureError
from nacl.signing import SigningKey, VerifyKey

from ..errors import IdentityError, InvalidSignature, MalformedMessage

__all__ = ["Identity", "PUBKEY_PREFIX", "parse_pubkey", "is_pubkey", "verify_signature"]

PUBKEY_PREFIX = "lob1"
_PUBKEY_RE = re.compile(r"lob1[0-9a-f]{64}")
_SIGNATURE_RE = re.compile(r"[0-9a-f]{128}")
_HEX64_RE = re.compile(r"[0-9a-f]{64}")


def is_pubkey(value: object) -> bool:
    """True when ``value`` is a well-formed ``lob1`` + 64 lowercase hex public key."""
    return isinstance(value, str) and _PUBKEY_RE.fullmatch(value) is not None


def parse_pubkey(pubkey: str) -> bytes:
    """The raw 32 public-key bytes of a ``lob1…`` string.

    Raises:
        MalformedMessage: when ``pubkey`` is not ``lob1`` + 64 lowercase hex digits.
    """
    if not is_pubkey(pubkey):
        raise _not_a_pubkey(pubkey)
    return bytes.fromhex(pubkey[len(PUBKEY_PREFIX) :])


def _not_a_pubkey(value: object) -> MalformedMessage:
    # Not str() of a non-string: a deeply nested list would raise RecursionError.
    shown = repr(value[:80]) if isinstance(value, str) else f"a {type(value).__name__}"
    return MalformedMessage(f"not a lobstah public key: {shown}")


def verify_signature(pubkey: str, message: bytes, signature: str) -> None:
    """Check an Ed25519 ``signature`` (128 hex) by ``pubkey`` over ``message``.

    Raises:
        MalformedMessage: the key or signature is not well formed.
        InvalidSignature: the signature does not verify.
    """
    if not isinstance(pubkey, str):
        # A key is its text: the cache is keyed by it, and whatever str() makes of another
        # object (one may print as a good key) is not a key.
        raise _not_a_pubkey(pubkey)
    key = _verify_key(pubkey)
    if not isinstance(signature, str) or _SIGNATURE_RE.fullmatch(signature) is None:
        raise MalformedMessage("signature must be 128 lowercase hex digits")
    try:
        key.verify(message, bytes.fromhex(signature))
    except (BadSignatureError, ValueError) as exc:
        # ValueError: 32 bytes that are not a valid curve point.
        raise InvalidSignature("signature does not verify") from exc


@lru_cache(maxsize=1024)
def _verify_key(pubkey: str) -> VerifyKey:
    """The verify key of a ``lob1`` string, kept for the next signature by the same peer (a
    ledger's receipts come from few workers): about 3 µs a check, most of its work besides
    Ed25519's own (measured).

    Raises:
        MalformedMessage: as :func:`parse_pubkey` (not cached).
    """
    return VerifyKey(parse_pubkey(pubkey))


@dataclass(frozen=True)
class Identity:
    """An Ed25519 key pair, plus any extra fields of its ``identity.json`` (kept on rewrite)."""

    seed: bytes = field(repr=False)
    #: Fields of identity.json this version does not interpret (e.g. ``nostrSecretKey``).
    extra: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    def __post_init__(self) -> None:
        if len(self.seed) != 32:
            raise IdentityError("an Ed25519 seed is exactly 32 bytes")

    @classmethod
    def generate(cls) -> Identity:
        """A new random identity."""
        return cls(bytes(SigningKey.generate()))

    @classmethod
    def from_seed(cls, seed: bytes) -> Identity:
        """The identity whose Ed25519 secret seed is ``seed`` (32 bytes)."""
        return cls(bytes(seed))

    @cached_property
    def pubkey(self) -> str:
        """The public key as ``lob1`` + 64 lowercase hex."""
        return PUBKEY_PREFIX + self._signing_key.verify_key.encode().hex()

    @cached_property
    def _signing_key(self) -> SigningKey:
        return SigningKey(self.seed)

    def sign(self, message: bytes) -> bytes:
        """The 64-byte Ed25519 signature of ``message``."""
        return self._signing_key.sign(message).signature

    def sign_hex(self, message: bytes) -> str:
        """The signature of ``message`` as 128 lowercase hex digits (the wire form)."""
        return self.sign(message).hex()

    def to_json(self) -> str:
        """The text of ``identity.json`` in the JS nodes' format, extra fields kept."""
        body = {
            **self.extra,
            "version": 1,
            "publicKey": self.pubkey,
            "secretKey": self.seed.hex(),
        }
        return json.dumps(body, indent=2) + "\n"

    @classmethod
    def from_json(cls, text: str) -> Identity:
        """Parse the text of an ``identity.json``.

        Raises:
            IdentityError: the text is not a valid identity (with the reason), or its
                ``publicKey`` does not match its ``secretKey``.
        """
        try:
            body = json.loads(text)
        except ValueError as exc:
            raise IdentityError(f"identity file is not valid JSON ({exc})") from None
        if not isinstance(body, dict):
            raise IdentityError("identity file must hold a JSON object")
        secret = body.get("secretKey")
        if not isinstance(secret, str) or _HEX64_RE.fullmatch(secret.lower()) is None:
            raise IdentityError("identity file has no valid secretKey (64 hex digits)")
        extra = {k: v for k, v in body.items() if k not in ("version", "publicKey", "secretKey")}
        identity = cls(bytes.fromhex(secret), extra)
        claimed = body.get("publicKey")
        if claimed is not None and claimed != identity.pubkey:
            raise IdentityError("identity file's publicKey does not match its secretKey")
        return identity

    def verify(self, message: bytes, signature: str) -> None:
        """Check a signature made by this identity (see :func:`verify_signature`)."""
        verify_signature(self.pubkey, message, signature)
