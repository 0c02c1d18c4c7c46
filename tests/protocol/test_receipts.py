from __future__ import annotations

import copy
import json
from typing import Any

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from lobstah_core.errors import InvalidSignature, MalformedMessage, StaleMessage
from lobstah_core.protocol import (
    Identity,
    Receipt,
    SignedReceipt,
    check_receipt_addressed,
    check_receipt_fresh,
    decode_receipt_header,
    encode_receipt_header,
    new_nonce,
    sign_receipt,
    verify_receipt,
)
from lobstah_core.protocol.canonical import canonical_bytes, canonicalize
from lobstah_core.protocol.receipts import _signed_bytes, signed_receipt_text

from .conftest import requires_node

WORKER = Identity.from_seed(bytes(range(32)))
REQUESTER = Identity.from_seed(bytes(range(1, 33)))


def make_receipt(**changes: Any) -> dict[str, Any]:
    body = {
        "version": 1,
        "jobId": "job-1",
        "nonce": "0f" * 16,
        "requesterPubkey": REQUESTER.pubkey,
        "workerPubkey": WORKER.pubkey,
        "model": "demo-fast",
        "inputTokens": 12,
        "outputTokens": 30,
        "startedAt": 1_767_225_600_000,
        "completedAt": 1_767_225_601_000,
    }
    return {**body, **changes}


def test_javascript_signature_verifies(js_vectors: dict) -> None:
    for name in ("receipt", "anonymousReceipt"):
        signed = verify_receipt(js_vectors[name]["signed"])
        assert canonicalize(signed.receipt.to_wire()) == js_vectors[name]["canonical"]


def test_we_sign_exactly_what_javascript_signs(js_vectors: dict) -> None:
    # Ed25519 is deterministic: same key, same bytes -> same signature.
    worker = Identity.from_seed(bytes.fromhex(js_vectors["workerSeed"]))
    ours = sign_receipt(js_vectors["receipt"]["signed"]["receipt"], worker)
    assert ours.signature == js_vectors["receipt"]["signed"]["signature"]


@requires_node
def test_javascript_accepts_our_signatures(node_verify: Any) -> None:
    signed = sign_receipt(make_receipt(model="llama3.2:3b 🦙", nonce=new_nonce()), WORKER)
    assert node_verify(WORKER.pubkey, canonicalize(signed.receipt.to_wire()), signed.signature)


def test_round_trip_from_model_and_from_dict() -> None:
    signed = sign_receipt(make_receipt(), WORKER)
    assert verify_receipt(signed) == signed
    assert verify_receipt(signed.to_wire()).signature == signed.signature
    model = Receipt.model_validate(make_receipt())
    assert sign_receipt(model, WORKER).signature == signed.signature
    assert signed.receipt.credit == 42


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("version", 2),
        ("jobId", "job-2"),
        ("nonce", "1f" * 16),
        ("requesterPubkey", WORKER.pubkey),
        ("workerPubkey", REQUESTER.pubkey),
        ("model", "demo-slow"),
        ("inputTokens", 13),
        ("outputTokens", 3000),
        ("startedAt", 1),
        ("completedAt", 1_767_225_601_001),
        ("extra", "field"),
    ],
)
def test_any_change_breaks_the_signature(field: str, value: Any) -> None:
    signed = sign_receipt(make_receipt(), WORKER).to_wire()
    forged = copy.deepcopy(signed)
    forged["receipt"][field] = value
    with pytest.raises((InvalidSignature, MalformedMessage)):
        verify_receipt(forged)


def test_unknown_fields_are_covered_and_kept() -> None:
    signed = sign_receipt(make_receipt(region="eu"), WORKER)
    again = verify_receipt(signed.to_wire())
    assert again.receipt.to_wire()["region"] == "eu"


@pytest.mark.parametrize(
    "changes",
    [
        {"inputTokens": -1},
        {"outputTokens": "5"},
        {"outputTokens": 1.5},
        {"nonce": "xyz"},
        {"workerPubkey": "anonymous"},
        {"completedAt": None},
    ],
)
def test_malformed_receipts(changes: dict[str, Any]) -> None:
    body = {"receipt": make_receipt(**changes), "signature": "00" * 64}
    with pytest.raises(MalformedMessage):
        verify_receipt(body)


def test_only_the_worker_can_sign() -> None:
    with pytest.raises(MalformedMessage):
        sign_receipt(make_receipt(), REQUESTER)


def test_freshness_window() -> None:
    receipt = Receipt.model_validate(make_receipt())
    done = receipt.completed_at
    check_receipt_fresh(receipt, now_ms=done + 300_000)
    check_receipt_fresh(receipt, now_ms=done - 300_000)
    with pytest.raises(StaleMessage, match="old"):
        check_receipt_fresh(receipt, now_ms=done + 300_001)
    with pytest.raises(StaleMessage, match="future"):
        check_receipt_fresh(receipt, now_ms=done - 300_001)


def test_addressing() -> None:
    receipt = Receipt.model_validate(make_receipt())
    check_receipt_addressed(receipt, REQUESTER.pubkey, WORKER.pubkey)
    with pytest.raises(InvalidSignature, match="another requester"):
        check_receipt_addressed(receipt, WORKER.pubkey)
    with pytest.raises(InvalidSignature, match="did not call"):
        check_receipt_addressed(receipt, REQUESTER.pubkey, REQUESTER.pubkey)


def test_header_round_trip_and_garbage() -> None:
    signed = sign_receipt(make_receipt(model="modèle"), WORKER)
    assert verify_receipt(decode_receipt_header(encode_receipt_header(signed))) == signed
    for garbage in ("not base64!", "W10=", ""):  # W10= is base64 of "[]"
        with pytest.raises(MalformedMessage):
            decode_receipt_header(garbage)


def test_nonces_are_fresh_hex() -> None:
    nonces = {new_nonce() for _ in range(100)}
    assert len(nonces) == 100
    assert all(len(n) == 32 and int(n, 16) >= 0 for n in nonces)
    assert SignedReceipt.model_fields.keys() == {"receipt", "signature"}


_EVERY_ASCII = "".join(map(chr, range(0x80)))


@pytest.mark.parametrize(
    "changes",
    [
        {},
        {"model": _EVERY_ASCII + "é🦙\u2028\u2029\ufeff\x85", "jobId": 'q"b\\s/'},
        {"model": "lone \ud800"},
        {"extra": 1e-7, "more": [1e16, {"z": -0.0, "a": None}], "flag": True},
        {"extra": "\ud800"},
        {"version": True},
    ],
)
def test_signed_text_is_compact_json_in_field_order(changes: dict[str, Any]) -> None:
    # pydantic writes the text when it can; it must be json.dumps's text to the byte (the
    # ledger stores it and exports it as ledger.jsonl).
    signed = sign_receipt(make_receipt(**changes), WORKER)
    expected = json.dumps(signed.to_wire(), separators=(",", ":"), ensure_ascii=False)
    assert signed_receipt_text(signed) == expected


_ANY_CHARACTER = st.characters(min_codepoint=0, max_codepoint=0x10FFFF, blacklist_categories=())


@settings(max_examples=300)
@given(
    job_id=st.text(_ANY_CHARACTER, max_size=40),
    model=st.text(_ANY_CHARACTER, max_size=40),
    tokens=st.integers(0, 10**9),
    completed_at=st.integers(0, 2**53 - 1),
    extra=st.one_of(st.just({}), st.dictionaries(st.text(_ANY_CHARACTER, min_size=1, max_size=5), st.integers() | st.text(_ANY_CHARACTER), max_size=2)),
)
def test_a_receipt_verifies_over_its_canonical_json(
    job_id: str, model: str, tokens: int, completed_at: int, extra: dict[str, Any]
) -> None:
    # verify_receipt writes a plain receipt's canonical text from a template over json's string
    # escaper; it must be canonicalize's text to the byte for any strings (non-ASCII, lone surrogates) and
    # integers the schema allows, or honest receipts would be refused.
    body = make_receipt(jobId=job_id, model=model, outputTokens=tokens, completedAt=completed_at)
    extra = {key: value for key, value in extra.items() if key not in body}
    try:
        signed = sign_receipt({**body, **extra}, WORKER)
    except MalformedMessage:
        assume(False)  # an extra integer outside the safe range: refused before signing
    assert _signed_bytes(signed.receipt) == canonical_bytes(signed.receipt.to_wire())
    assert verify_receipt(SignedReceipt.model_validate(signed.to_wire())) == signed
    # The text the ledger stores and exports is written from a template too: json's to the byte.
    assert signed_receipt_text(signed) == json.dumps(signed.to_wire(), separators=(",", ":"), ensure_ascii=False)
