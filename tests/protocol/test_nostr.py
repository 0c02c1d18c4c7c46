from __future__ import annotations

import json

import pytest

from lobstah_core.errors import InvalidSignature, MalformedMessage
from lobstah_core.protocol import Identity, sign_announcement
from lobstah_core.protocol.nostr import (
    ANNOUNCEMENT_KIND,
    announcement_event,
    announcement_of,
    new_nostr_secret,
    nostr_pubkey,
    sign_event,
    verify_event,
    withdrawal_event,
)

WORKER = Identity.from_seed(b"n" * 32)
SECRET = bytes.fromhex("b7e151628aed2a6abf7158809cf4f3c762e7160f38b4da56a784d9045190cfef")  # BIP-340 vector 1


def test_bip340_public_key_vector() -> None:
    assert nostr_pubkey(SECRET) == "dff1d77f2a671c5f36183726db2341be58feae1da2deced843240f7b502ba659"


def test_announcement_event_round_trip() -> None:
    signed = sign_announcement({"version": 1, "pubkey": WORKER.pubkey, "url": "http://203.0.113.1:17474",
                                "ttlSeconds": 300, "announcedAt": 1_795_000_000_000}, WORKER)
    event = announcement_event(SECRET, signed, 1_795_000_000)
    assert event.kind == ANNOUNCEMENT_KIND
    assert event.tags == [["d", "lobstah-peer"], ["t", "lobstah"], ["lobstah_pubkey", WORKER.pubkey]]
    again = verify_event(json.loads(event.model_dump_json()))
    assert announcement_of(again) == signed.to_wire()
    deletion = withdrawal_event(SECRET, event.id, 1_795_000_001)
    assert deletion.kind == 5 and deletion.tags == [["e", event.id]] and deletion.content == "lobstah unannounce"
    verify_event(deletion.model_dump())


@pytest.mark.parametrize("field", ["content", "created_at", "tags", "sig", "id"])
def test_tampering_is_caught(field: str) -> None:
    event = sign_event(new_nostr_secret(), 1_795_000_000, ANNOUNCEMENT_KIND, [["t", "lobstah"]], "{}").model_dump()
    event[field] = {"content": "{ }", "created_at": 1, "tags": [["t", "x"]], "sig": "00" * 64, "id": "ab" * 32}[field]
    with pytest.raises(InvalidSignature):
        verify_event(event)


def test_not_an_event_or_not_an_announcement() -> None:
    with pytest.raises(MalformedMessage):
        verify_event({"kind": 1})
    note = sign_event(SECRET, 1, 1, [], "hello")
    with pytest.raises(MalformedMessage):
        announcement_of(note)


def test_an_event_with_an_unsafe_number_is_malformed() -> None:
    signed = sign_announcement({"version": 1, "pubkey": WORKER.pubkey, "url": "http://203.0.113.1:17474",
                                "ttlSeconds": 300, "announcedAt": 1_795_000_000_000}, WORKER)
    event = announcement_event(SECRET, signed, 1_795_000_000).model_dump()
    for field, value in (("created_at", 10**5000), ("kind", 2**40), ("created_at", -1)):
        with pytest.raises(MalformedMessage):
            verify_event({**event, field: value})
