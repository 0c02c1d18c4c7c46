"""``GET /metrics`` on router and worker, read with prometheus_client's own text parser."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families

from lobstah_core.http import RunningServer
from lobstah_core.protocol import Identity
from lobstah_core.router.metrics import UNSERVED_MODEL_LABELS
from lobstah_core.router.peers import Peer, PeerStore

from ..conftest import StartWorker, free_port, ledgered
from .conftest import StartRouter, add_peer
from .rogue_worker import create_rogue_app

WORKER = Identity.from_seed(b"\xc1" * 32)
CHAT = {"model": "demo-fast", "messages": [{"role": "user", "content": "count me"}], "max_tokens": 4}


async def scrape(url: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of ``url``/metrics by (name, sorted labels)."""
    async with httpx.AsyncClient(base_url=url) as http:
        response = await http.get("/metrics")
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/plain")
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


async def scrape_when(url: str, key: tuple[str, tuple[tuple[str, str], ...]], value: float) -> dict[Any, float]:
    """The samples once ``key`` reads ``value`` (receipts are checked and stored after the
    answer, in 20 ms batches), or after 5 s."""
    for _ in range(100):
        samples = await scrape(url)
        if samples.get(key) == value:
            break
        await asyncio.sleep(0.05)
    return samples


async def test_router_counters_move(start_worker: StartWorker, start_router: StartRouter, router_home: Path, tmp_path: Path) -> None:
    add_peer(router_home, await start_worker(identity=WORKER, home=tmp_path / "w"), WORKER.pubkey, label="kitchen")
    router = await start_router()
    before = await scrape(router.url)
    assert before[("lobstah_router_peers", (("state", "healthy"),))] == 1
    assert before[("lobstah_balance_tokens", (("kind", "available"),))] == 10_000
    async with httpx.AsyncClient(base_url=router.url, timeout=20) as http:
        for _ in range(2):
            assert (await http.post("/v1/chat/completions", json=CHAT)).status_code == 200
        assert (await http.post("/v1/chat/completions", json={**CHAT, "stream": True})).status_code == 200
        assert (await http.post("/v1/chat/completions", json={**CHAT, "model": "llama9"})).status_code == 404
    [receipt, *_] = await ledgered(router_home, 3)
    spent = 3 * (receipt.receipt.input_tokens + 4)
    after = await scrape_when(router.url, ("lobstah_router_receipts_accepted_total", (("peer", "kitchen"),)), 3)
    ok = (("model", "demo-fast"), ("outcome", "ok"), ("peer", "kitchen"))
    assert after[("lobstah_router_requests_total", ok)] == 3
    assert after[("lobstah_router_requests_total", (("model", "llama9"), ("outcome", "no_model"), ("peer", "")))] == 1
    assert after[("lobstah_router_request_duration_seconds_count", (("model", "demo-fast"),))] == 3
    assert after[("lobstah_router_first_byte_seconds_count", (("model", "demo-fast"),))] == 3
    assert after[("lobstah_router_receipts_accepted_total", (("peer", "kitchen"),))] == 3
    assert after[("lobstah_router_output_tokens_total", (("model", "demo-fast"),))] == 12
    assert after[("lobstah_balance_tokens", (("kind", "spent"),))] == spent


async def test_router_counts_rejected_receipts(start_router: StartRouter, router_home: Path) -> None:
    rogue = await RunningServer(create_rogue_app(WORKER, "stale"), "127.0.0.1", 0, "rogue").start()
    try:
        add_peer(router_home, rogue, WORKER.pubkey)
        router = await start_router()
        async with httpx.AsyncClient(base_url=router.url, timeout=20) as http:
            assert (await http.post("/v1/chat/completions", json=CHAT)).status_code == 200
        stale = ("lobstah_router_receipts_rejected_total", (("reason", "stale"),))
        assert (await scrape_when(router.url, stale, 1))[stale] == 1
    finally:
        await rogue.stop()


async def test_worker_metrics(start_worker: StartWorker) -> None:
    worker = await start_worker(identity=WORKER)
    async with httpx.AsyncClient(base_url=worker.url, timeout=20) as http:
        assert (await http.post("/v1/chat/completions", json=CHAT)).status_code == 200
        assert (await http.post("/v1/embeddings", json={"model": "demo-fast", "input": "x"})).status_code == 200
        assert (await http.post("/v1/chat/completions", json={"model": "demo-fast"})).status_code == 400
    samples = await scrape_when(worker.url, ("lobstah_worker_receipts_issued_total", (("model", "demo-fast"),)), 2)
    route = "/v1/chat/completions"
    assert samples[("lobstah_worker_requests_total", (("route", route), ("status", "200")))] == 1
    assert samples[("lobstah_worker_requests_total", (("route", route), ("status", "400")))] == 1
    assert samples[("lobstah_worker_receipts_issued_total", (("model", "demo-fast"),))] == 2
    assert samples[("lobstah_worker_output_tokens_total", (("model", "demo-fast"),))] == 4
    assert samples[("lobstah_worker_queue_depth", ())] == 0


async def test_model_names_no_peer_serves_cannot_grow_the_metrics_without_bound(
    start_worker: StartWorker, start_router: StartRouter, router_home: Path, tmp_path: Path
) -> None:
    add_peer(router_home, await start_worker(identity=WORKER, home=tmp_path / "w"), WORKER.pubkey, label="kitchen")
    router = await start_router()
    asked = UNSERVED_MODEL_LABELS + 20
    async with httpx.AsyncClient(base_url=router.url, timeout=20) as http:
        for n in range(asked):
            assert (await http.post("/v1/chat/completions", json={**CHAT, "model": f"junk-{n}"})).status_code == 404
        assert (await http.post("/v1/chat/completions", json=CHAT)).status_code == 200
    samples = await scrape(router.url)
    unserved = {
        dict(labels)["model"]: value for (name, labels), value in samples.items()
        if name == "lobstah_router_requests_total" and dict(labels)["outcome"] == "no_model"
    }
    assert len(unserved) == UNSERVED_MODEL_LABELS + 1  # the first names, then one "(other)"
    assert unserved["junk-0"] == 1 and unserved["(other)"] == 20
    assert sum(unserved.values()) == asked  # every request is still counted
    ok = (("model", "demo-fast"), ("outcome", "ok"), ("peer", "kitchen"))
    assert samples[("lobstah_router_requests_total", ok)] == 1


async def test_a_long_or_unprintable_unserved_name_gets_no_label_of_its_own(
    start_worker: StartWorker, start_router: StartRouter, router_home: Path, tmp_path: Path
) -> None:
    """The label budget counts names, so each must be small: one request for a model named
    with 100,000 characters used to add ~2 MB to every scrape (a label on each histogram
    bucket), and a NUL made the exposition binary. Such names count under "(other)"."""
    add_peer(router_home, await start_worker(identity=WORKER, home=tmp_path / "w"), WORKER.pubkey, label="kitchen")
    router = await start_router()
    async with httpx.AsyncClient(base_url=router.url, timeout=20) as http:
        for name in ("x" * 100_000, "nul\x00name", "junk-short"):
            assert (await http.post("/v1/chat/completions", json={**CHAT, "model": name})).status_code == 404
        exposition = (await http.get("/metrics")).content
    assert len(exposition) < 100_000 and b"\x00" not in exposition
    unserved = {
        dict(labels)["model"]: value for (name, labels), value in (await scrape(router.url)).items()
        if name == "lobstah_router_requests_total" and dict(labels)["outcome"] == "no_model"
    }
    assert unserved == {"(other)": 2, "junk-short": 1}


async def test_a_peer_down_when_the_router_starts_is_counted_under_its_name(
    start_router: StartRouter, router_home: Path
) -> None:
    """The router probes its peers before it serves; a failure then used to be counted under
    the peer's key (the counter did not know the names yet) and every later one under its
    name: one peer, two series."""
    PeerStore(router_home / "peers.json").add(Peer(pubkey=WORKER.pubkey, url=f"http://127.0.0.1:{free_port()}", label="garage"))
    router = await start_router()
    failures = {
        dict(labels)["peer"]: value for (name, labels), value in (await scrape(router.url)).items()
        if name == "lobstah_router_peer_failures_total"
    }
    assert failures == {"garage": 1}
