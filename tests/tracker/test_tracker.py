"""The tracker over HTTP on loopback: every endpoint, every refusal, TTL expiry, caps."""

from __future__ import annotations

import copy
import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from lobstah_core.http import RunningServer
from lobstah_core.protocol import Identity, sign_announcement, sign_unannounce, verify_announcement
from lobstah_core.tracker import create_app
from lobstah_core.tracker.registry import Limits

WORKERS = [Identity.from_seed(bytes([n]) * 32) for n in (0xE1, 0xE2, 0xE3)]
NOW = [1_795_000_000_000]


def announcement(identity: Identity, **changes: Any) -> dict[str, Any]:
    body = {"version": 1, "pubkey": identity.pubkey, "url": "http://203.0.113.9:17474", "label": "attic",
            "models": ["demo-fast"], "tier": "interactive", "ttlSeconds": 300, "announcedAt": NOW[0]}
    return sign_announcement({**body, **changes}, identity).to_wire()


@pytest.fixture
async def tracker() -> AsyncIterator[httpx.AsyncClient]:
    NOW[0] = 1_795_000_000_000
    server = await RunningServer(create_app(Limits(max_entries=2), clock_ms=lambda: NOW[0]), "127.0.0.1", 0, "tracker").start()
    async with httpx.AsyncClient(base_url=server.url) as http:
        yield http
    await server.stop()


async def test_announce_list_and_expire(tracker: httpx.AsyncClient) -> None:
    accepted = await tracker.post("/announce", json=announcement(WORKERS[0]))
    assert accepted.json() == {"ok": True, "pubkey": WORKERS[0].pubkey, "ttlSeconds": 300, "registeredCount": 1}
    listing = (await tracker.get("/peers")).json()
    assert listing["version"] == 1 and listing["count"] == 1
    assert verify_announcement(listing["peers"][0]).announcement.label == "attic"
    assert "1 live" in (await tracker.get("/")).text
    NOW[0] += 300_001  # the TTL runs out: the peer is gone
    assert (await tracker.get("/peers")).json()["count"] == 0


async def test_newer_announcement_replaces_older(tracker: httpx.AsyncClient) -> None:
    await tracker.post("/announce", json=announcement(WORKERS[0], label="old"))
    NOW[0] += 1000
    await tracker.post("/announce", json=announcement(WORKERS[0], label="new"))
    NOW[0] -= 500
    late = await tracker.post("/announce", json=announcement(WORKERS[0], label="late copy"))
    assert late.status_code == 200
    peers = (await tracker.get("/peers")).json()["peers"]
    assert [p["announcement"]["label"] for p in peers] == ["new"]


@pytest.mark.parametrize(
    ("make", "reason"),
    [
        (lambda: _forged(), "bad-signature"),
        (lambda: announcement(WORKERS[0], announcedAt=NOW[0] - 300_001), "stale"),
        (lambda: announcement(WORKERS[0], announcedAt=NOW[0] + 300_001), "future"),
        (lambda: announcement(WORKERS[0], label="x" * 65), "too-large"),
        (lambda: announcement(WORKERS[0], models=["m"] * 65), "too-large"),
    ],
)
async def test_refusals_name_their_reason(tracker: httpx.AsyncClient, make: Any, reason: str) -> None:
    response = await tracker.post("/announce", json=make())
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["type"] == "rejected" and error["reason"] == reason
    assert (await tracker.get("/peers")).json()["count"] == 0


def _forged() -> dict[str, Any]:
    body = copy.deepcopy(announcement(WORKERS[0]))
    body["announcement"]["url"] = "http://evil.example:17474"
    return body


async def test_bad_json_and_caps(tracker: httpx.AsyncClient) -> None:
    bad = await tracker.post("/announce", content=b"{nope", headers={"content-type": "application/json"})
    assert bad.status_code == 400 and bad.json()["error"]["type"] == "bad_json"
    huge = await tracker.post("/announce", content=b'{"a":"' + b"x" * 70_000 + b'"}', headers={"content-type": "application/json"})
    assert huge.status_code == 413
    for identity in WORKERS[:2]:
        assert (await tracker.post("/announce", json=announcement(identity))).status_code == 200
    full = await tracker.post("/announce", json=announcement(WORKERS[2]))
    assert full.status_code == 503 and full.json()["error"]["type"] == "tracker_full"
    # A known pubkey may still refresh while the tracker is full.
    assert (await tracker.post("/announce", json=announcement(WORKERS[0]))).status_code == 200


async def test_unannounce(tracker: httpx.AsyncClient) -> None:
    await tracker.post("/announce", json=announcement(WORKERS[0]))
    stale = sign_unannounce(WORKERS[0], NOW[0] - 300_001).model_dump()
    assert (await tracker.post("/unannounce", json=stale)).json()["error"]["reason"] == "stale"
    forged = {**sign_unannounce(WORKERS[1], NOW[0]).model_dump(), "pubkey": WORKERS[0].pubkey}
    assert (await tracker.post("/unannounce", json=forged)).json()["error"]["reason"] == "bad-signature"
    done = await tracker.post("/unannounce", json=sign_unannounce(WORKERS[0], NOW[0]).model_dump())
    assert done.json() == {"ok": True, "removed": True}
    again = await tracker.post("/unannounce", json=sign_unannounce(WORKERS[0], NOW[0]).model_dump())
    assert again.json() == {"ok": True, "removed": False}
    assert (await tracker.get("/peers")).json()["count"] == 0


async def test_a_huge_ttl_is_clamped_to_ten_minutes(tracker: httpx.AsyncClient) -> None:
    accepted = await tracker.post("/announce", json=announcement(WORKERS[0], ttlSeconds=10**12))
    assert accepted.status_code == 200 and accepted.json()["ttlSeconds"] == 600
    NOW[0] += 600_000
    assert (await tracker.get("/peers")).json()["count"] == 1
    NOW[0] += 1
    assert (await tracker.get("/peers")).json()["count"] == 0


async def test_hostile_numbers_and_nesting_are_400_not_500(tracker: httpx.AsyncClient) -> None:
    json_body = {"content-type": "application/json"}
    deep = await tracker.post("/announce", content=b"[" * 30_000 + b"]" * 30_000, headers=json_body)
    assert deep.status_code == 400 and deep.json()["error"]["type"] == "bad_json"
    body = announcement(WORKERS[0])
    text = json.dumps(body).replace('"ttlSeconds": 300', '"ttlSeconds": ' + "9" * 400)
    huge = await tracker.post("/announce", content=text.encode(), headers=json_body)
    assert huge.status_code == 400 and huge.json()["error"]["reason"] == "malformed"
    assert (await tracker.post("/announce", json=body)).status_code == 200
