"""The dispatch core without sockets: blame, failover, busy peers, phase timeouts, in-flight.

Peers are functions behind the in-memory transport, so each rule of WIRE.md "[ext] who is to
blame" is checked in milliseconds, and timing cases use timeouts of a few tens of ms.
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from lobstah_core.errors import AllPeersFailed, InsufficientCredit, ModelNotFound, NoCapablePeer, NoPeers
from lobstah_core.events import EventBus
from lobstah_core.protocol import Identity
from lobstah_core.protocol.schemas import Capacity
from lobstah_core.router.directory import PeerDirectory
from lobstah_core.router.dispatch import (
    AllPeersBusy,
    Call,
    CallRecord,
    Dispatcher,
    PeerFailedMidStream,
    PeerRefused,
    retry_after_seconds,
)
from lobstah_core.router.health import HealthBook
from lobstah_core.router.memory import Handler, MemoryRequest, MemoryResponse, MemoryTransport
from lobstah_core.router.peers import Peer, PeerListError, PeerStore
from lobstah_core.timeouts import Timeouts

ME = Identity.from_seed(b"R" * 32)
PEERS = [Identity.from_seed(bytes([65 + i]) * 32) for i in range(3)]
CALL = Call("/v1/chat/completions", b'{"model":"m","messages":[]}', "m")
FAST = Timeouts(connect_s=1, first_byte_s=0.05, idle_s=0.05)


def ok(body: bytes = b'{"ok":true}') -> Handler:
    async def handler(request: MemoryRequest) -> MemoryResponse:
        return MemoryResponse(200, body)

    return handler


def status(code: int, message: str = "nope", headers: dict[str, str] | None = None) -> Handler:
    async def handler(request: MemoryRequest) -> MemoryResponse:
        body = json.dumps({"error": {"type": "x", "message": message}}).encode()
        return MemoryResponse(code, body, headers or {})

    return handler


def hung(seconds: float = 10.0) -> Handler:
    async def handler(request: MemoryRequest) -> MemoryResponse:
        await asyncio.sleep(seconds)
        return MemoryResponse(200, b"{}")

    return handler


def streaming(*pieces: bytes, pause: float = 0.0, then_hang: bool = False) -> Handler:
    async def body() -> AsyncIterator[bytes]:
        for piece in pieces:
            yield piece
            await asyncio.sleep(pause)
        if then_hang:
            await asyncio.sleep(10)

    async def handler(request: MemoryRequest) -> MemoryResponse:
        return MemoryResponse(200, body(), {"Content-Type": "text/event-stream"})

    return handler


def grid(tmp_path: Path, *handlers: Handler, models: tuple[str, ...] = ("m",), now: list[int] | None = None) -> Dispatcher:
    """A dispatcher over peers A, B, C (in that order, equal load) served by ``handlers``."""
    clock = (lambda: now[0]) if now else (lambda: 1_000_000)
    health = HealthBook(EventBus(), clock)
    peers = [Peer(pubkey=PEERS[i].pubkey, url=f"http://peer{i}", label="ABC"[i]) for i in range(len(handlers))]
    store = PeerStore(tmp_path / "peers.json")
    store.save(peers)
    transport = MemoryTransport({peer.url: handler for peer, handler in zip(peers, handlers)})
    directory = PeerDirectory(store, health, transport, EventBus(), clock)
    directory.reload()
    for peer in peers:
        health.of(peer.pubkey).capacity = Capacity(pubkey=peer.pubkey, models=list(models), queue_depth=0)
    dispatcher = Dispatcher(ME, directory, transport, clock, FAST)
    dispatcher._rotation = iter(lambda: 0, 1)  # type: ignore[assignment]  # no rotation: A first
    return dispatcher


def tried(dispatcher: Dispatcher) -> list[str]:
    return [r.peer.label or "" for r in dispatcher.transport.requests]  # type: ignore[attr-defined]


def failures(dispatcher: Dispatcher) -> list[int]:
    return [dispatcher.health.of(p.pubkey).consecutive_failures for p in PEERS[: len(dispatcher.directory.peers)]]


async def test_a_request_the_peer_refuses_goes_back_to_the_client_without_penalty(tmp_path: Path) -> None:
    dispatcher = grid(tmp_path, status(400, "model does not support tools"), ok())
    with pytest.raises(PeerRefused) as refused:
        await dispatcher.fetch(CALL)
    assert refused.value.status == 400
    assert refused.value.to_body()["error"]["message"] == "model does not support tools"
    assert tried(dispatcher) == ["A"]  # no failover: B would refuse it too
    assert failures(dispatcher) == [0, 0]


@pytest.mark.parametrize("code", [413, 422])
async def test_other_request_faults_keep_their_status(tmp_path: Path, code: int) -> None:
    dispatcher = grid(tmp_path, status(code))
    with pytest.raises(PeerRefused) as refused:
        await dispatcher.fetch(CALL)
    assert refused.value.status == code


@pytest.mark.parametrize("busy", [status(429, headers={"Retry-After": "7"}), status(503, headers={"Retry-After": "3"})])
async def test_a_busy_peer_is_passed_over_without_penalty(tmp_path: Path, busy: Handler) -> None:
    dispatcher = grid(tmp_path, busy, ok())
    answer = await dispatcher.fetch(CALL)
    assert answer.peer.label == "B" and tried(dispatcher) == ["A", "B"]
    assert failures(dispatcher) == [0, 0]


async def test_when_every_peer_is_busy_the_client_gets_429_with_the_smallest_wait(tmp_path: Path) -> None:
    dispatcher = grid(tmp_path, status(429, headers={"Retry-After": "7"}), status(503, headers={"Retry-After": "3"}))
    with pytest.raises(AllPeersBusy) as busy:
        await dispatcher.fetch(CALL)
    assert busy.value.status == 429 and busy.value.retry_after == 3


async def test_a_503_without_retry_after_is_a_failure(tmp_path: Path) -> None:
    dispatcher = grid(tmp_path, status(503), ok())
    assert (await dispatcher.fetch(CALL)).peer.label == "B"
    assert failures(dispatcher) == [1, 0]


@pytest.mark.parametrize("code", [401, 402, 403, 404])
async def test_a_peer_that_refuses_us_is_passed_over_without_penalty(tmp_path: Path, code: int) -> None:
    dispatcher = grid(tmp_path, status(code), ok())
    assert (await dispatcher.fetch(CALL)).peer.label == "B"
    assert failures(dispatcher) == [0, 0]


async def test_when_every_peer_wants_credit_we_lack_the_client_gets_402_not_a_retryable_502(tmp_path: Path) -> None:
    dispatcher = grid(tmp_path, status(402, "no credit"), status(402, "no credit"))
    with pytest.raises(InsufficientCredit) as refused:
        await dispatcher.fetch(CALL)
    assert refused.value.status == 402 and refused.value.details["attempts"] == 2
    assert "lending compute" in refused.value.message and failures(dispatcher) == [0, 0]
    # one 402 among other failures is still a failure of the grid
    with pytest.raises(AllPeersFailed):
        await grid(tmp_path / "mixed", status(402), status(500)).fetch(CALL)


async def test_server_errors_fail_over_count_and_exclude(tmp_path: Path) -> None:
    dispatcher = grid(tmp_path, status(500), status(502))
    for _ in range(2):
        with pytest.raises(AllPeersFailed) as failed:
            await dispatcher.fetch(CALL)
        assert [e["peer"] for e in failed.value.details["errors"]] == ["A", "B"]
    assert failures(dispatcher) == [2, 2]
    with pytest.raises(NoCapablePeer) as excluded:  # both excluded now: 503 + Retry-After
        await dispatcher.fetch(CALL)
    assert excluded.value.status == 503 and excluded.value.retry_after == 30


async def test_a_peer_with_no_status_line_in_time_is_a_failure(tmp_path: Path) -> None:
    dispatcher = grid(tmp_path, hung(), ok())
    answer = await dispatcher.fetch(CALL)
    assert answer.peer.label == "B"
    assert failures(dispatcher) == [1, 0]
    assert "first byte" in (dispatcher.health.of(PEERS[0].pubkey).last_error or "")


async def test_a_plain_answer_that_goes_quiet_fails_over(tmp_path: Path) -> None:
    dispatcher = grid(tmp_path, streaming(b'{"par', then_hang=True), ok(b'{"whole":1}'))
    answer = await dispatcher.fetch(CALL)
    assert answer.body == b'{"whole":1}'
    assert "silent" in (dispatcher.health.of(PEERS[0].pubkey).last_error or "")


async def test_a_slow_but_steady_answer_is_never_cut(tmp_path: Path) -> None:
    # 10 pieces 0.1 s apart: a second in all, far over each phase limit (0.3 s), never idle.
    dispatcher = grid(tmp_path, streaming(*[b"x"] * 10, pause=0.1))
    dispatcher.timeouts = Timeouts(connect_s=1, first_byte_s=0.3, idle_s=0.3)
    assert (await dispatcher.fetch(CALL)).body == b"x" * 10


async def test_in_flight_never_leaks_when_the_client_gives_up(tmp_path: Path) -> None:
    dispatcher = grid(tmp_path, hung(), hung())
    dispatcher.timeouts = Timeouts(first_byte_s=10)
    task = asyncio.create_task(dispatcher.fetch(CALL))
    await asyncio.sleep(0.02)
    assert dispatcher.health.of(PEERS[0].pubkey).in_flight == 1
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert [dispatcher.health.of(p.pubkey).in_flight for p in PEERS[:2]] == [0, 0]
    assert failures(dispatcher) == [0, 0]  # the client leaving is nobody's failure


async def test_a_stream_is_committed_and_a_mid_stream_break_counts(tmp_path: Path) -> None:
    dispatcher = grid(tmp_path, streaming(b"data: 1\n\n", then_hang=True), ok())
    got = []
    with pytest.raises(PeerFailedMidStream):
        async with dispatcher.stream(CALL) as stream:
            assert stream.peer.label == "A"
            async for chunk in stream.chunks():
                got.append(chunk)
    assert got == [b"data: 1\n\n"]
    assert failures(dispatcher) == [1, 0] and tried(dispatcher) == ["A"]  # no failover after commit
    assert dispatcher.health.of(PEERS[0].pubkey).in_flight == 0


async def test_a_whole_stream_records_success(tmp_path: Path) -> None:
    dispatcher = grid(tmp_path, streaming(b"data: 1\n\n", b"data: [DONE]\n\n"))
    dispatcher.health.of(PEERS[0].pubkey).consecutive_failures = 1
    async with dispatcher.stream(CALL) as stream:
        assert b"".join([c async for c in stream.chunks()]).endswith(b"[DONE]\n\n")
    state = dispatcher.health.of(PEERS[0].pubkey)
    assert state.consecutive_failures == 0 and state.ttfb_ms is not None and state.in_flight == 0


async def test_a_stream_fails_over_before_its_commit(tmp_path: Path) -> None:
    dispatcher = grid(tmp_path, status(500), streaming(b"data: 1\n\n"))
    async with dispatcher.stream(CALL) as stream:
        assert stream.peer.label == "B"
        assert [c async for c in stream.chunks()] == [b"data: 1\n\n"]


async def test_a_model_nobody_lists_is_not_found(tmp_path: Path) -> None:
    dispatcher = grid(tmp_path, ok(), ok())
    with pytest.raises(ModelNotFound) as missing:
        await dispatcher.fetch(Call("/v1/chat/completions", b"{}", "gpt-4o"))
    assert missing.value.status == 404 and missing.value.details["model"] == "gpt-4o"
    assert tried(dispatcher) == []


async def test_a_model_on_peers_that_could_not_be_asked_is_unavailable_not_missing(tmp_path: Path) -> None:
    dispatcher = grid(tmp_path, ok())
    dispatcher.health.of(PEERS[0].pubkey).capacity = None  # never answered a probe
    with pytest.raises(NoCapablePeer) as unavailable:
        await dispatcher.fetch(CALL)
    assert unavailable.value.status == 503 and unavailable.value.retry_after >= 1


async def test_no_peers_at_all(tmp_path: Path) -> None:
    with pytest.raises(NoPeers):
        await grid(tmp_path).fetch(CALL)


async def test_peers_whose_announcement_expired_are_no_peers(tmp_path: Path) -> None:
    # Discovered peers drop out when their announcement expires: A's has, B's has not.
    now = [1_000_000]
    dispatcher = grid(tmp_path, ok(), ok(), now=now)
    peers = dispatcher.directory.peers
    for key, expires_at in zip(list(peers), (now[0] - 1, now[0] + 60_000)):
        peers[key] = peers[key].model_copy(update={"expires_at": expires_at})
    await dispatcher.fetch(CALL)
    assert tried(dispatcher) == ["B"]
    now[0] += 120_000  # B's expires too
    with pytest.raises(NoPeers):
        await dispatcher.fetch(CALL)


@pytest.mark.parametrize(("header", "seconds"), [("7", 7), (" 12 ", 12), ("0", 1), ("99999", 3600),
                                                 ("Wed, 21 Oct 2026 07:28:00 GMT", 1), (None, None), ("", None)])
def test_retry_after_is_read_in_whole_seconds(header: str | None, seconds: int | None) -> None:
    assert retry_after_seconds(header) == seconds


def test_a_peer_list_that_is_not_utf8_keeps_the_previous_peers_and_later_edits_are_followed(tmp_path: Path) -> None:
    """README: a running router picks changes of peers.json up. A file that is not UTF-8 raised
    UnicodeDecodeError out of reload(), which ended the directory's background loop for good:
    no more peers.json changes, capacity probes or lifted exclusions, and nothing logged."""
    dispatcher = grid(tmp_path, ok())
    directory, store = dispatcher.directory, dispatcher.directory.store
    store.path.write_bytes(b"\xff\xfe[]")
    os.utime(store.path, (1, 1))  # a new mtime, however fast the file system's clock ticks
    assert directory.reload() is False
    assert directory.load_error is not None and "not a valid peer list" in directory.load_error
    assert [peer.label for peer in directory.peers.values()] == ["A"]
    store.save([Peer(pubkey=PEERS[1].pubkey, url="http://peer1", label="B")])
    os.utime(store.path, (2, 2))
    directory.reload()
    assert [peer.label for peer in directory.peers.values()] == ["B"] and directory.load_error is None


def test_a_bad_entry_in_the_peer_list_costs_only_itself(tmp_path: Path) -> None:
    """A hand-edited peers.json with one typo (a short pubkey) used to leave the router with no
    peers at all, the good entries beside it included. The good ones are used; the bad one is
    named in the warning, and kept in the file (`peers add` refuses to rewrite it until fixed)."""
    dispatcher = grid(tmp_path, ok())
    directory, store = dispatcher.directory, dispatcher.directory.store
    good = {"pubkey": PEERS[1].pubkey, "url": "http://peer1", "label": "B"}
    store.path.write_text(json.dumps([good, {"pubkey": "lob1typo", "url": "http://peer2", "label": "C"}]))
    os.utime(store.path, (1, 1))
    directory.reload()
    assert [peer.label for peer in directory.peers.values()] == ["B"]
    assert directory.load_error is not None and "entry 2" in directory.load_error and "pubkey" in directory.load_error
    with pytest.raises(PeerListError):
        store.add(Peer(pubkey=PEERS[0].pubkey, url="http://peer0"))
    assert "lob1typo" in store.path.read_text()


def test_a_peer_list_path_that_cannot_be_read_keeps_the_previous_peers(tmp_path: Path) -> None:
    """The same for a home whose directory was replaced by a file: stat() raised
    NotADirectoryError out of reload() and ended the background loop."""
    dispatcher = grid(tmp_path, ok())
    directory = dispatcher.directory
    in_the_way = tmp_path / "home-now-a-file"
    in_the_way.write_text("x")
    directory.store.path = in_the_way / "peers.json"
    assert directory.reload() is False
    assert directory.load_error is not None and [peer.label for peer in directory.peers.values()] == ["A"]


async def test_how_a_call_ended_is_reported_after_the_answer_and_a_broken_hook_costs_no_answer(tmp_path: Path) -> None:
    dispatcher = grid(tmp_path, status(500), ok(b'{"answer":1}'))
    reported: list[CallRecord] = []

    def on_call(record: CallRecord) -> None:
        reported.append(record)
        raise RuntimeError("a metrics bug")

    dispatcher.on_call = on_call
    loop = asyncio.get_running_loop()
    errors: list[dict[str, object]] = []
    loop.set_exception_handler(lambda loop, context: errors.append(context))
    try:
        answer = await dispatcher.fetch(CALL)
        assert answer.body == b'{"answer":1}' and reported == []  # the answer first
        await asyncio.sleep(0)
        assert [(r.outcome, r.peer) for r in reported] == [("ok", "B")]
        assert isinstance(errors[0]["exception"], RuntimeError)  # logged, not raised at the client
        down = grid(tmp_path / "down", status(500))
        down.on_call = reported.append
        with pytest.raises(AllPeersFailed):
            await down.fetch(CALL)
        await asyncio.sleep(0)
        assert reported[-1].outcome == "failed"
    finally:
        loop.set_exception_handler(None)
