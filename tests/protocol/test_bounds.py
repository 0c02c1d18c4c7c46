"""WIRE.md "[ext] bounds": numbers a peer sends are refused as malformed, never a crash.

Each hostile input here once broke something (issue 15): a 400-digit token count made
``canonicalize`` raise ``OverflowError``, a TTL of 10^12 s made an announcement immortal, and a
30,000-deep JSON body blew Python's recursion limit.
"""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest

from lobstah_core.errors import MalformedMessage
from lobstah_core.protocol import (
    Announcement,
    Identity,
    announcement_status,
    canonicalize,
    decode_receipt_header,
    sign_announcement,
    sign_receipt,
    verify_announcement,
    verify_receipt,
)
from lobstah_core.protocol.wire import parse_json

from ..factories import receipt_body

WORKER = Identity.from_seed(bytes([7]) * 32)
REQUESTER = Identity.from_seed(bytes([8]) * 32)
NOW = 1_795_000_000_000
DEEP = "[" * 30_000 + "]" * 30_000


@pytest.mark.parametrize("number", [10**400, -(10**400), 2**53, -(2**53), 10**5000], ids=["400 digits", "-400 digits", "2^53", "-2^53", "5000 digits"])
def test_canonicalize_refuses_unsafe_integers(number: int) -> None:
    with pytest.raises(MalformedMessage, match="safe range"):
        canonicalize({"outputTokens": number})


def test_canonicalize_keeps_the_largest_safe_integer() -> None:
    assert canonicalize([2**53 - 1, -(2**53) + 1]) == "[9007199254740991,-9007199254740991]"


def test_canonicalize_refuses_nesting_too_deep_to_walk() -> None:
    value: Any = []
    for _ in range(50_000):
        value = [value]
    with pytest.raises(MalformedMessage, match="nested"):
        canonicalize(value)


def _hostile_receipt(**changes: Any) -> dict[str, Any]:
    # A signature cannot be made over an unsafe number, so any hex stands in: the receipt must
    # be refused as malformed before its signature is even looked at.
    return {"receipt": receipt_body(WORKER, REQUESTER, **changes), "signature": "ab" * 64}


@pytest.mark.parametrize(
    "changes",
    [
        {"outputTokens": 10**400},
        {"inputTokens": 10**9 + 1},
        {"outputTokens": -1},
        {"completedAt": 2**53},
        {"startedAt": -1},
        {"extraField": 10**400},  # unknown fields are signed too, so they are bounded too
    ],
)
def test_receipt_numbers_out_of_bounds_are_malformed(changes: dict[str, Any]) -> None:
    with pytest.raises(MalformedMessage):
        verify_receipt(_hostile_receipt(**changes))


def test_a_billion_tokens_is_still_a_receipt() -> None:
    signed = sign_receipt(receipt_body(WORKER, REQUESTER, inputTokens=10**9, outputTokens=10**9), WORKER)
    assert verify_receipt(signed.to_wire()).receipt.credit == 2 * 10**9


@pytest.mark.parametrize(
    "header",
    [
        base64.b64encode(DEEP.encode()).decode(),
        base64.b64encode(json.dumps(_hostile_receipt(outputTokens=10**400)).encode()).decode(),
        "not base64!",
    ],
)
def test_hostile_receipt_headers_are_malformed(header: str) -> None:
    with pytest.raises(MalformedMessage):
        verify_receipt(decode_receipt_header(header))


def test_parse_json_refuses_deep_nesting_and_garbage() -> None:
    for text in (DEEP, "{", b"\xff"):
        with pytest.raises(MalformedMessage):
            parse_json(text)
    assert parse_json('{"a":[1]}') == {"a": [1]}


def _announcement(**changes: Any) -> dict[str, Any]:
    body = {"version": 1, "pubkey": WORKER.pubkey, "url": "http://203.0.113.9:17474",
            "ttlSeconds": 300, "announcedAt": NOW}
    return {**body, **changes}


def test_a_huge_ttl_is_granted_ten_minutes_only() -> None:
    signed = sign_announcement(_announcement(ttlSeconds=10**12), WORKER)
    announcement = verify_announcement(signed.to_wire()).announcement
    assert announcement.granted_ttl_seconds == 600
    assert announcement.expires_at() == NOW + 600_000
    assert announcement_status(announcement, NOW + 600_000) == "ok"
    assert announcement_status(announcement, NOW + 600_001) == "stale"


def test_a_tiny_ttl_is_granted_a_minute() -> None:
    announcement = Announcement.model_validate(_announcement(ttlSeconds=1))
    assert announcement.granted_ttl_seconds == 60
    assert announcement_status(announcement, NOW + 59_000) == "ok"


@pytest.mark.parametrize("changes", [{"ttlSeconds": 10**400}, {"announcedAt": 10**400}, {"announcedAt": -5}])
def test_announcement_numbers_out_of_bounds_are_malformed(changes: dict[str, Any]) -> None:
    with pytest.raises(MalformedMessage):
        verify_announcement({"announcement": _announcement(**changes), "signature": "ab" * 64})
