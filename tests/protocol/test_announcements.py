from __future__ import annotations

import copy
from typing import Any

import pytest

from lobstah_core.errors import InvalidSignature, MalformedMessage, StaleMessage
from lobstah_core.protocol import (
    Announcement,
    Identity,
    announcement_status,
    sign_announcement,
    sign_unannounce,
    verify_announcement,
    verify_unannounce,
)

WORKER = Identity.from_seed(bytes(range(32)))
NOW = 1_767_225_600_000


def make_announcement(**changes: Any) -> dict[str, Any]:
    body = {
        "version": 1,
        "pubkey": WORKER.pubkey,
        "url": "http://192.0.2.7:17474",
        "label": "attic",
        "models": ["demo-fast"],
        "tier": "batch",
        "ttlSeconds": 300,
        "announcedAt": NOW,
    }
    return {**body, **changes}


def test_javascript_announcement_verifies_and_matches(js_vectors: dict) -> None:
    signed = verify_announcement(js_vectors["announcement"]["signed"])
    assert signed.announcement.label == "kitchen mac mini 🦞"
    worker = Identity.from_seed(bytes.fromhex(js_vectors["workerSeed"]))
    ours = sign_announcement(js_vectors["announcement"]["signed"]["announcement"], worker)
    assert ours.signature == js_vectors["announcement"]["signed"]["signature"]


def test_optional_fields_are_left_out_not_nulled() -> None:
    body = make_announcement()
    for key in ("label", "models", "tier"):
        del body[key]
    signed = sign_announcement(body, WORKER)
    assert set(signed.announcement.to_wire()) == {"version", "pubkey", "url", "ttlSeconds", "announcedAt"}
    verify_announcement(signed.to_wire())


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("url", "http://evil.example:17474"),
        ("label", "other"),
        ("models", ["demo-fast", "demo-slow"]),
        ("tier", "interactive"),
        ("ttlSeconds", 3000),
        ("announcedAt", NOW + 1),
    ],
)
def test_any_change_breaks_the_signature(field: str, value: Any) -> None:
    forged = copy.deepcopy(sign_announcement(make_announcement(), WORKER).to_wire())
    forged["announcement"][field] = value
    with pytest.raises(InvalidSignature):
        verify_announcement(forged)


def test_bad_tier_and_ttl_are_malformed() -> None:
    for changes in ({"tier": "turbo"}, {"ttlSeconds": 0}, {"url": ""}):
        with pytest.raises(MalformedMessage):
            sign_announcement(make_announcement(**changes), WORKER)


def test_status() -> None:
    ann = Announcement.model_validate(make_announcement())
    assert announcement_status(ann, NOW) == "ok"
    assert announcement_status(ann, NOW + 300_000) == "ok"
    assert announcement_status(ann, NOW + 300_001) == "stale"
    assert announcement_status(ann, NOW - 300_000) == "ok"
    assert announcement_status(ann, NOW - 300_001) == "future"
    assert ann.expires_at() == NOW + 300_000


def test_unannounce(js_vectors: dict) -> None:
    verify_unannounce(js_vectors["unannounce"], now_ms=js_vectors["unannounce"]["timestamp"])
    body = sign_unannounce(WORKER, NOW)
    assert verify_unannounce(body.model_dump(), NOW + 299_000).pubkey == WORKER.pubkey
    with pytest.raises(StaleMessage):
        verify_unannounce(body, NOW + 300_001)
    forged = body.model_copy(update={"timestamp": NOW + 1})
    with pytest.raises(InvalidSignature):
        verify_unannounce(forged, NOW)
