"""Receipts: a worker's signed statement of the tokens one completion used.

A receipt is signed by the worker over its canonical JSON. The router that requested the work
accepts it only if the signature verifies, it is addressed to the router, it is fresh
(``|now - completedAt| <= 300 000 ms``) and its nonce is new; the nonce check needs state and
lives in the ledger, the rest is here.
"""

from __future__ import annotations

import base64
import binascii
import json
import secrets
from json.encoder import encode_basestring as _json_string
from contextlib import suppress
from typing import Annotated, Any, Literal

from pydantic import Field, StrictInt, StringConstraints

from ..errors import InvalidSignature, MalformedMessage, StaleMessage
from .canonical import canonical_bytes
from .identity import Identity, verify_signature
from .wire import (
    EpochMs,
    HexSignature,
    Pubkey,
    WireModel,
    parse_json,
    parse_model,
    sign_object,
)

__all__ = [
    "Receipt",
    "SignedReceipt",
    "RECEIPT_WINDOW_MS",
    "RECEIPT_HEADER",
    "RECEIPT_COMMENT",
    "MAX_TOKENS",
    "new_nonce",
    "sign_receipt",
    "verify_receipt",
    "signed_receipt_text",
    "check_receipt_fresh",
    "check_receipt_addressed",
    "encode_receipt_header",
    "decode_receipt_header",
]

#: The response header of a plain completion that carries its signed receipt.
RECEIPT_HEADER = "x-lobstah-receipt"
#: The SSE comment prefix of a streamed completion's receipt.
RECEIPT_COMMENT = ":lobstah-receipt:"

#: How far ``completedAt`` may be from the verifier's clock, either way.
RECEIPT_WINDOW_MS = 300_000

#: Compact JSON as the JS nodes write it: no spaces, non-ASCII characters raw.
_COMPACT_JSON = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False)

#: The most tokens one receipt may claim on either side (WIRE.md "[ext] bounds").
MAX_TOKENS = 10**9

Nonce = Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{32}$")]
TokenCount = Annotated[StrictInt, Field(ge=0, le=MAX_TOKENS)]


class Receipt(WireModel, extra="allow"):
    """The token usage of one completion (unknown fields are kept: the signature covers them)."""

    version: Literal[1]
    job_id: str
    #: 16 random bytes as 32 lowercase hex; unique per receipt, the replay guard.
    nonce: Nonce
    #: The router's ``lob1`` key, or ``anonymous`` when the request named none.
    requester_pubkey: str
    worker_pubkey: Pubkey
    model: str
    input_tokens: TokenCount
    output_tokens: TokenCount
    #: Milliseconds since the epoch.
    started_at: EpochMs
    completed_at: EpochMs

    @property
    def credit(self) -> int:
        """Credits this receipt moves from requester to worker."""
        return self.input_tokens + self.output_tokens


class SignedReceipt(WireModel):
    """A receipt with the worker's signature."""

    receipt: Receipt
    signature: HexSignature


def new_nonce() -> str:
    """A fresh receipt nonce: 16 random bytes as 32 lowercase hex."""
    return secrets.token_hex(16)


def sign_receipt(receipt: Receipt | dict[str, Any], identity: Identity) -> SignedReceipt:
    """Sign ``receipt`` as its worker.

    Args:
        receipt: the receipt, as a model or a plain dict in wire form.
        identity: the worker's identity; must match ``workerPubkey``.

    Returns:
        The signed receipt.

    Raises:
        MalformedMessage: the receipt is not valid, or names another worker.
    """
    model = parse_model(Receipt, receipt)
    if model.worker_pubkey != identity.pubkey:
        raise MalformedMessage("a receipt can only be signed by its worker")
    body = model.to_wire()
    return SignedReceipt(receipt=model, signature=sign_object(body, identity))


def verify_receipt(signed: SignedReceipt | dict[str, Any]) -> SignedReceipt:
    """Check the worker's signature of a signed receipt.

    Args:
        signed: ``{"receipt": {...}, "signature": "..."}`` as a model or a plain dict.

    Returns:
        The signed receipt as a model.

    Raises:
        MalformedMessage: not a well-formed signed receipt.
        InvalidSignature: the signature does not verify.
    """
    model = parse_model(SignedReceipt, signed)
    verify_signature(model.receipt.worker_pubkey, _signed_bytes(model.receipt), model.signature)
    return model


#: A receipt of only its own fields in canonical form: keys sorted (WIRE.md "Canonical JSON").
_CANONICAL_RECEIPT = (
    '{"completedAt":%d,"inputTokens":%d,"jobId":%s,"model":%s,"nonce":%s,"outputTokens":%d,'
    '"requesterPubkey":%s,"startedAt":%d,"version":%d,"workerPubkey":%s}'
)
#: A signed receipt of only its own fields as compact JSON, keys in field order.
_SIGNED_RECEIPT_TEXT = (
    '{"receipt":{"version":%d,"jobId":%s,"nonce":%s,"requesterPubkey":%s,"workerPubkey":%s,'
    '"model":%s,"inputTokens":%d,"outputTokens":%d,"startedAt":%d,"completedAt":%d},'
    '"signature":%s}'
)


def _signed_bytes(receipt: Receipt) -> bytes:
    """What the worker's signature covers: the receipt's canonical JSON, UTF-8.

    A receipt with only its own fields is one level of fixed ASCII keys over strings and
    integers the schema bounds to the safe range, so its canonical text (WIRE.md "Canonical
    JSON") is a fixed template over json's escaped strings, at about a quarter of the cost of
    building a dict and sorting it (measured; tests/protocol check it against ``canonicalize``
    for any strings and integers). A string with a lone surrogate, which UTF-8 cannot encode
    and canonical JSON escapes, and a receipt with unknown fields take the general rules.
    """
    if not receipt.model_extra:
        r = receipt
        text = _CANONICAL_RECEIPT % (
            r.completed_at, r.input_tokens, _json_string(r.job_id), _json_string(r.model),
            _json_string(r.nonce), r.output_tokens, _json_string(r.requester_pubkey),
            r.started_at, r.version, _json_string(r.worker_pubkey),
        )
        with suppress(UnicodeEncodeError):
            return text.encode("utf-8")
    return canonical_bytes(receipt.to_wire())


def signed_receipt_text(signed: SignedReceipt) -> str:
    """``signed`` as compact JSON, keys in field order: the text the receipt header carries and
    the ledger stores; ``json.dumps(signed.to_wire(), separators=(",", ":"),
    ensure_ascii=False)`` to the character (tests/protocol).

    A receipt with only its own fields fills a fixed template (json's escaper writes its
    strings), at about 0.6 of the cost of pydantic's writer (measured); unknown fields may hold
    anything JSON does, and go through json.
    """
    r = signed.receipt
    if not r.model_extra:
        return _SIGNED_RECEIPT_TEXT % (
            r.version, _json_string(r.job_id), _json_string(r.nonce),
            _json_string(r.requester_pubkey), _json_string(r.worker_pubkey), _json_string(r.model),
            r.input_tokens, r.output_tokens, r.started_at, r.completed_at,
            _json_string(signed.signature),
        )
    return _COMPACT_JSON.encode(signed.to_wire())


def check_receipt_fresh(
    receipt: Receipt, now_ms: int, window_ms: int = RECEIPT_WINDOW_MS
) -> None:
    """Raise :class:`StaleMessage` when ``completedAt`` is more than ``window_ms`` from now."""
    skew = now_ms - receipt.completed_at
    if abs(skew) > window_ms:
        direction = "old" if skew > 0 else "far in the future"
        raise StaleMessage(f"receipt is too {direction} ({abs(skew)} ms from now)")


def check_receipt_addressed(
    receipt: Receipt, requester_pubkey: str, worker_pubkey: str | None = None
) -> None:
    """Raise :class:`InvalidSignature` unless the receipt is for this requester (and worker).

    ``worker_pubkey`` is the peer actually called ([ext]): a receipt signed by anyone else
    is refused even if its signature is good.
    """
    if receipt.requester_pubkey != requester_pubkey:
        raise InvalidSignature("receipt is addressed to another requester", reason="wrong_requester")
    if worker_pubkey is not None and receipt.worker_pubkey != worker_pubkey:
        raise InvalidSignature("receipt is signed by a worker we did not call", reason="wrong_worker")


def encode_receipt_header(signed: SignedReceipt) -> str:
    """The ``x-lobstah-receipt`` header / SSE comment value: base64 of the signed JSON."""
    text = signed_receipt_text(signed)
    return base64.b64encode(text.encode("utf-8")).decode("ascii")


def decode_receipt_header(value: str) -> dict[str, Any]:
    """Decode an ``x-lobstah-receipt`` value to its JSON object (not yet verified).

    Raises:
        MalformedMessage: not base64 of a JSON object.
    """
    try:
        raw = base64.b64decode(value.strip(), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise MalformedMessage(f"receipt header is not base64 ({exc})") from None
    body = parse_json(raw)
    if not isinstance(body, dict):
        raise MalformedMessage("receipt header must hold a JSON object")
    return body

