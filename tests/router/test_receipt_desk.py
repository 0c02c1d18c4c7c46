"""The receipt desk on its own: batches, replays inside one batch, and what every outcome publishes."""

from __future__ import annotations

import base64
import json
from pathlib import Path

from lobstah_core.engines.base import Usage
from lobstah_core.events import EventBus, ReceiptAccepted, ReceiptRejected
from lobstah_core.ledger import Ledger
from lobstah_core.protocol import Identity, encode_receipt_header
from lobstah_core.router.receipts import ReceiptDesk

from ..factories import signed_receipt

ME = Identity.from_seed(b"\x01" * 32)
WORKER = Identity.from_seed(b"\x02" * 32)
NOW = 1_767_225_601_000


async def settle(desk: ReceiptDesk, bus: EventBus, submissions: list[tuple[object, str]]) -> list[object]:
    async with bus.subscribe() as events:
        for value, peer in submissions:
            desk.accept_later(value, peer)  # type: ignore[arg-type]
        await desk.drain()
        return [events.get_nowait() for _ in range(events.qsize())]


async def test_a_burst_is_verified_and_stored_whole(tmp_path: Path) -> None:
    bus = EventBus()
    with Ledger(tmp_path / "ledger.sqlite3") as ledger:
        desk = ReceiptDesk(ME.pubkey, ledger, bus, lambda: NOW)
        burst = [(encode_receipt_header(signed_receipt(WORKER, ME)), WORKER.pubkey) for _ in range(50)]
        events = await settle(desk, bus, burst)
        assert [type(e) for e in events] == [ReceiptAccepted] * 50
        assert desk.accepted == 50 and ledger.totals().receipts == 50


async def test_the_same_receipt_twice_in_one_batch_is_a_replay(tmp_path: Path) -> None:
    bus = EventBus()
    with Ledger(tmp_path / "ledger.sqlite3") as ledger:
        desk = ReceiptDesk(ME.pubkey, ledger, bus, lambda: NOW)
        header = encode_receipt_header(signed_receipt(WORKER, ME))
        events = await settle(desk, bus, [(header, WORKER.pubkey), (header, WORKER.pubkey)])
        assert isinstance(events[0], ReceiptAccepted)
        assert isinstance(events[1], ReceiptRejected) and events[1].reason == "replayed"
        assert ledger.totals().receipts == 1 and desk.rejected == {"replayed": 1}


async def test_bad_and_good_receipts_in_one_batch_are_judged_one_by_one(tmp_path: Path) -> None:
    bus = EventBus()
    other = Identity.from_seed(b"\x03" * 32)
    with Ledger(tmp_path / "ledger.sqlite3") as ledger:
        desk = ReceiptDesk(ME.pubkey, ledger, bus, lambda: NOW)
        good = signed_receipt(WORKER, ME)
        submissions = [
            (None, WORKER.pubkey),
            ("not base64!", WORKER.pubkey),
            (encode_receipt_header(signed_receipt(WORKER, other)), WORKER.pubkey),
            (encode_receipt_header(good), other.pubkey),  # signed by another peer than the one called
            (encode_receipt_header(signed_receipt(WORKER, ME, completedAt=NOW - 301_000)), WORKER.pubkey),
            (good.to_wire(), WORKER.pubkey),  # a finished job hands over JSON, not a header
        ]
        events = await settle(desk, bus, submissions)
        reasons = [getattr(e, "reason", "accepted") for e in events]
        assert reasons == ["missing", "malformed", "wrong_requester", "wrong_worker", "stale", "accepted"]
        assert [r.receipt.nonce for r in ledger.recent(10)] == [good.receipt.nonce]


async def test_a_poison_receipt_costs_only_itself(tmp_path: Path) -> None:
    # A 400-digit token count once made canonicalize raise OverflowError and the whole batch,
    # the honest receipts beside it included, was lost.
    honest = [signed_receipt(WORKER, ME) for _ in range(20)]
    poison_json = json.dumps(signed_receipt(WORKER, ME).to_wire()).replace('"outputTokens": 20', '"outputTokens": ' + "9" * 400)
    poison = base64.b64encode(poison_json.encode()).decode()
    bus = EventBus()
    with Ledger(tmp_path / "ledger.sqlite3") as ledger:
        desk = ReceiptDesk(ME.pubkey, ledger, bus, lambda: NOW)
        submissions = [(encode_receipt_header(r), WORKER.pubkey) for r in honest]
        submissions.insert(7, (poison, WORKER.pubkey))
        events = await settle(desk, bus, submissions)
        assert [getattr(e, "reason", "accepted") for e in events].count("accepted") == 20
        assert desk.accepted == 20 and desk.rejected == {"malformed": 1}
        assert ledger.totals().receipts == 20


async def test_a_receipt_claiming_more_than_the_answer_used_is_inflated(tmp_path: Path) -> None:
    bus = EventBus()
    with Ledger(tmp_path / "ledger.sqlite3") as ledger:
        desk = ReceiptDesk(ME.pubkey, ledger, bus, lambda: NOW)
        reported = Usage(prompt_tokens=10, completion_tokens=7)
        inflated = signed_receipt(WORKER, ME, inputTokens=10, outputTokens=10**9)
        padded_prompt = signed_receipt(WORKER, ME, inputTokens=11, outputTokens=7)
        honest = signed_receipt(WORKER, ME, inputTokens=10, outputTokens=7)
        async with bus.subscribe() as events:
            for signed in (inflated, padded_prompt, honest):
                desk.accept_later(encode_receipt_header(signed), WORKER.pubkey, reported)
            desk.accept_later(encode_receipt_header(signed_receipt(WORKER, ME)), WORKER.pubkey)  # no usage seen
            await desk.drain()
            outcomes = [events.get_nowait() for _ in range(events.qsize())]
        assert [getattr(e, "reason", "accepted") for e in outcomes] == ["inflated", "inflated", "accepted", "accepted"]
        assert "1000000000" in outcomes[0].message
        assert desk.rejected == {"inflated": 2}
        assert ledger.balance(WORKER.pubkey).earned == 17 + 30
