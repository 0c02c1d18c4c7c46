from __future__ import annotations

import pytest

from lobstah_core.errors import InvalidSignature, MalformedMessage, StaleMessage
from lobstah_core.protocol import Identity, sign_request, verify_request

REQUESTER = Identity.from_seed(bytes(range(32)))
NOW = 1_767_225_600_000
PATH = "/v1/chat/completions"


def test_javascript_request_vector(js_vectors: dict) -> None:
    vector = js_vectors["request"]
    requester = Identity.from_seed(bytes.fromhex(js_vectors["requesterSeed"]))
    headers = sign_request(requester, "POST", PATH, vector["body"].encode(), vector["timestamp"])
    assert headers["x-lobstah-signature"] == vector["signature"]


def test_round_trip_and_tampering() -> None:
    body = b'{"model":"demo-fast"}'
    headers = sign_request(REQUESTER, "POST", PATH, body, NOW)
    assert verify_request(headers, "POST", PATH, body, NOW + 1000) == REQUESTER.pubkey
    with pytest.raises(InvalidSignature):
        verify_request(headers, "POST", PATH, body + b" ", NOW)
    with pytest.raises(InvalidSignature):
        verify_request(headers, "POST", "/v1/jobs", body, NOW)
    with pytest.raises(StaleMessage):
        verify_request(headers, "POST", PATH, body, NOW + 300_001)


def test_unsigned_and_half_signed_requests() -> None:
    assert verify_request({"x-lobstah-requester": REQUESTER.pubkey}, "POST", PATH, b"", NOW) is None
    headers = sign_request(REQUESTER, "POST", PATH, b"", NOW)
    del headers["x-lobstah-timestamp"]
    with pytest.raises(MalformedMessage):
        verify_request(headers, "POST", PATH, b"", NOW)
    headers = {**sign_request(REQUESTER, "POST", PATH, b"", NOW), "x-lobstah-timestamp": "soon"}
    with pytest.raises(MalformedMessage):
        verify_request(headers, "POST", PATH, b"", NOW)
