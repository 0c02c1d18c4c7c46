"""[ext] reachability: the tracker calls an announced URL back and says whether it answered."""

from __future__ import annotations

import socket
import time
from collections.abc import AsyncIterator

import httpx
import pytest

from lobstah_core.discovery.advertiser import Advertiser, NostrChannel, TrackerChannel
from lobstah_core.http import RunningServer
from lobstah_core.protocol import Identity, sign_announcement
from lobstah_core.tracker import create_app

from ..conftest import WORKER, StartWorker


def announcement(identity: Identity, url: str) -> dict[str, object]:
    body = {"version": 1, "pubkey": identity.pubkey, "url": url, "ttlSeconds": 300,
            "announcedAt": int(time.time() * 1000)}
    return sign_announcement(body, identity).to_wire()


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
async def tracker() -> AsyncIterator[RunningServer]:
    server = await RunningServer(create_app(), "127.0.0.1", 0, "tracker").start()
    yield server
    await server.stop()


async def answer(tracker: RunningServer, body: dict[str, object]) -> dict[str, object]:
    async with httpx.AsyncClient(base_url=tracker.url) as http:
        response = await http.post("/announce", json=body)
    assert response.status_code == 200, response.text
    return response.json()


async def test_a_worker_that_answers_is_reachable(tracker: RunningServer, start_worker: StartWorker,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LOBSTAH_ALLOW_LOOPBACK", "1")  # a one-machine grid
    worker = await start_worker()
    reply = await answer(tracker, announcement(WORKER, worker.url))
    assert reply["reachable"] is True and "reachability" not in reply
    other = Identity.from_seed(b"O" * 32)  # the URL answers, but as someone else
    reply = await answer(tracker, announcement(other, worker.url))
    assert reply["reachable"] is False and "another key" in str(reply["reachability"])


async def test_nobody_listening_is_unreachable_with_the_reason(tracker: RunningServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LOBSTAH_ALLOW_LOOPBACK", "1")
    reply = await answer(tracker, announcement(WORKER, f"http://127.0.0.1:{closed_port()}"))
    assert reply["reachable"] is False and "cannot connect" in str(reply["reachability"])
    assert reply["ok"] is True  # listed all the same: reachability is advice, not a verdict


async def test_url_safety_applies_before_calling(tracker: RunningServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LOBSTAH_ALLOW_LOOPBACK", raising=False)
    reply = await answer(tracker, announcement(WORKER, "http://127.0.0.1:17474"))
    assert reply["reachable"] is False and "loopback" in str(reply["reachability"])


async def test_the_worker_hears_it_and_what_to_do(tracker: RunningServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LOBSTAH_ALLOW_LOOPBACK", "1")
    identity = Identity.from_seed(b"A" * 32)

    async def models() -> list[str]:
        return ["demo-fast"]

    advertiser = Advertiser(identity, [TrackerChannel(tracker.url, identity, lambda: int(time.time() * 1000))],
                            f"http://127.0.0.1:{closed_port()}", models, lambda: int(time.time() * 1000))
    await advertiser.start()
    try:
        assert "NOT reachable" in advertiser.last_result and "forward the port" in advertiser.last_result
        assert "Tailscale" in advertiser.last_result
    finally:
        await advertiser.stop()


async def test_on_nostr_reachability_is_unknown(nostr_relay: str) -> None:
    identity = Identity.from_seed(b"N" * 32)

    async def models() -> list[str]:
        return ["demo-fast"]

    clock = lambda: int(time.time() * 1000)  # noqa: E731
    channel = NostrChannel([nostr_relay], b"\x07" * 32, clock)
    advertiser = Advertiser(identity, [channel], "http://203.0.113.9:17474", models, clock)
    await advertiser.start()
    try:
        assert advertiser.last_result == "published to 1/1 Nostr relays; reachability unknown"
    finally:
        await advertiser.stop()
