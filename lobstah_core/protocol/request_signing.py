"""[ext] Signed requests: a router proves to a worker which requester it is.

The JS nodes send ``x-lobstah-requester`` unauthenticated. We add two optional headers,
``x-lobstah-timestamp: <ms>`` and ``x-lobstah-signature: <hex>``: an Ed25519 signature by the
requester over ``lobstah-request:v1:<METHOD>:<path>:<timestamp>:<sha256 hex of body>``. Old
workers ignore them; our workers verify them when present.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping

from ..errors import InvalidSignature, MalformedMessage, StaleMessage
from .identity import Identity, verify_signature

__all__ = [
    "REQUESTER_HEADER",
    "TIMESTAMP_HEADER",
    "SIGNATURE_HEADER",
    "REQUEST_WINDOW_MS",
    "ANONYMOUS",
    "request_signing_message",
    "sign_request",
    "verify_request",
]

REQUESTER_HEADER = "x-lobstah-requester"
TIMESTAMP_HEADER = "x-lobstah-timestamp"
SIGNATURE_HEADER = "x-lobstah-signature"
REQUEST_WINDOW_MS = 300_000
#: The requester a worker records when a request names none.
ANONYMOUS = "anonymous"


def request_signing_message(method: str, path: str, timestamp: int, body: bytes) -> bytes:
    """The exact bytes a request signature covers."""
    digest = hashlib.sha256(body).hexdigest()
    return f"lobstah-request:v1:{method.upper()}:{path}:{timestamp}:{digest}".encode()


def sign_request(
    identity: Identity, method: str, path: str, body: bytes, now_ms: int
) -> dict[str, str]:
    """The three headers that identify and authenticate ``identity`` as the requester."""
    message = request_signing_message(method, path, now_ms, body)
    return {
        REQUESTER_HEADER: identity.pubkey,
        TIMESTAMP_HEADER: str(now_ms),
        SIGNATURE_HEADER: identity.sign_hex(message),
    }


def verify_request(
    headers: Mapping[str, str], method: str, path: str, body: bytes, now_ms: int
) -> str | None:
    """Verify a request's signature headers.

    Args:
        headers: the request headers (case-insensitive mapping, as aiohttp gives).

    Returns:
        The verified requester pubkey, or ``None`` when the request carries no signature.

    Raises:
        MalformedMessage: a signature without a requester or timestamp, or unparsable values.
        StaleMessage: the timestamp is more than 5 minutes from ``now_ms``.
        InvalidSignature: the signature does not verify.
    """
    signature = headers.get(SIGNATURE_HEADER)
    if signature is None:
        return None
    requester = headers.get(REQUESTER_HEADER)
    raw_timestamp = headers.get(TIMESTAMP_HEADER)
    if requester is None or raw_timestamp is None:
        raise MalformedMessage(
            f"a signed request needs {REQUESTER_HEADER} and {TIMESTAMP_HEADER} headers"
        )
    try:
        timestamp = int(raw_timestamp)
    except ValueError:
        raise MalformedMessage(f"{TIMESTAMP_HEADER} must be integer milliseconds") from None
    if abs(now_ms - timestamp) > REQUEST_WINDOW_MS:
        raise StaleMessage("request signature timestamp is more than 5 minutes from now")
    try:
        verify_signature(requester, request_signing_message(method, path, timestamp, body), signature)
    except InvalidSignature:
        raise InvalidSignature("request signature does not verify") from None
    return requester
