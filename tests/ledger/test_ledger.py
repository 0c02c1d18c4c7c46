from __future__ import annotations

import io
import json
import multiprocessing
from pathlib import Path

import pytest

from lobstah_core.errors import LedgerError
from lobstah_core.ledger import Ledger
from lobstah_core.protocol import Identity

from ..factories import signed_receipt

WORKER = Identity.from_seed(b"w" * 32)
ROUTER = Identity.from_seed(b"r" * 32)
OTHER = Identity.from_seed(b"o" * 32)


@pytest.fixture
def ledger(tmp_path: Path) -> Ledger:
    with Ledger(tmp_path / "ledger.sqlite3") as opened:
        yield opened


def test_add_reports_added_duplicate_and_invalid(ledger: Ledger) -> None:
    signed = signed_receipt(WORKER, ROUTER)
    assert ledger.add(signed).status == "added"
    assert ledger.add(signed.to_wire()).status == "duplicate"
    forged = signed.to_wire()
    forged["receipt"]["outputTokens"] = 10_000
    forged["receipt"]["nonce"] = "ab" * 16
    result = ledger.add(forged)
    assert (result.status, result.reason) == ("invalid", "signature does not verify")
    assert ledger.totals().receipts == 1
    assert not ledger.has_nonce("ab" * 16)


def test_balances_per_pubkey(ledger: Ledger) -> None:
    ledger.add(signed_receipt(WORKER, ROUTER, inputTokens=100, outputTokens=50))
    ledger.add(signed_receipt(WORKER, ROUTER, inputTokens=1, outputTokens=2))
    ledger.add(signed_receipt(ROUTER, OTHER, inputTokens=7, outputTokens=0))
    worker, router = ledger.balance(WORKER.pubkey), ledger.balance(ROUTER.pubkey)
    assert (worker.earned, worker.spent, worker.net, worker.available) == (153, 0, 153, 10_153)
    assert (router.earned, router.spent, router.net, router.available) == (7, 153, -146, 9_854)
    assert ledger.balance(Identity.generate().pubkey).available == 10_000
    assert ledger.totals().model_dump() == {"earned": 160, "spent": 160, "receipts": 3}


def test_balance_survives_reopening(tmp_path: Path) -> None:
    path = tmp_path / "ledger.sqlite3"
    with Ledger(path) as ledger:
        ledger.add(signed_receipt(WORKER, ROUTER, inputTokens=5, outputTokens=5))
    with Ledger(path) as ledger:
        assert ledger.balance(WORKER.pubkey).earned == 10
        assert ledger.summary(ROUTER.pubkey).self.spent == 10


def test_recent_and_history(ledger: Ledger) -> None:
    start = 1_767_225_600_000
    for minute in range(5):
        ledger.add(signed_receipt(WORKER, ROUTER, completedAt=start + minute * 60_000, outputTokens=minute))
    ledger.add(signed_receipt(ROUTER, OTHER, completedAt=start + 90_000, inputTokens=3, outputTokens=0))
    newest = ledger.recent(limit=2)
    assert [r.receipt.output_tokens for r in newest] == [4, 3]
    assert len(ledger.recent(limit=10, pubkey=OTHER.pubkey)) == 1
    buckets = ledger.history(ROUTER.pubkey, bucket_ms=120_000, since_ms=start)
    assert [(b.start - start, b.earned, b.spent) for b in buckets] == [
        (0, 3, 10 + 11),  # minutes 0,1 spent 10+0 and 10+1; earned 3 at 1.5 min
        (120_000, 0, 12 + 13),
        (240_000, 0, 14),
    ]


def test_import_counts_every_kind_of_bad_line(ledger: Ledger) -> None:
    good = [signed_receipt(WORKER, ROUTER) for _ in range(3)]
    forged = signed_receipt(WORKER, ROUTER).to_wire()
    forged["receipt"]["inputTokens"] += 1
    lines = [
        json.dumps(good[0].to_wire()),
        "",
        "{truncated",
        json.dumps(good[1].to_wire()),
        json.dumps(forged),
        json.dumps({"receipt": {"version": 1}, "signature": "00"}),
        json.dumps(good[0].to_wire()),
        "[]",
        json.dumps(good[2].to_wire()),
    ]
    report = ledger.import_jsonl(lines)
    assert (report.added, report.duplicate, report.invalid, report.malformed) == (3, 1, 1, 3)
    assert [line for line, _ in report.problems] == [3, 5, 6, 8]
    assert ledger.balance(WORKER.pubkey).earned == 90


def test_export_is_importable_by_another_ledger(ledger: Ledger, tmp_path: Path) -> None:
    receipts = [signed_receipt(WORKER, ROUTER, model="modèle 🦙") for _ in range(4)]
    ledger.add_many(receipts)
    out = io.StringIO()
    assert ledger.export_jsonl(out) == 4
    lines = out.getvalue().splitlines()
    assert [json.loads(line) for line in lines] == [r.to_wire() for r in receipts]
    with Ledger(tmp_path / "copy.sqlite3") as copy:
        assert copy.import_jsonl(lines).added == 4
        assert copy.summary(ROUTER.pubkey) == ledger.summary(ROUTER.pubkey)


def _write_many(path: str, seed: bytes, count: int) -> None:
    worker = Identity.from_seed(seed)
    with Ledger(path, batch_size=7) as ledger:
        for _ in range(count // 7):
            ledger.add_many(signed_receipt(worker, ROUTER) for _ in range(7))
        for _ in range(count % 7):
            ledger.add(signed_receipt(worker, ROUTER))


def test_two_processes_write_at_once(tmp_path: Path) -> None:
    path = str(tmp_path / "shared.sqlite3")
    Ledger(path).close()
    context = multiprocessing.get_context("spawn")
    writers = [
        context.Process(target=_write_many, args=(path, bytes([n]) * 32, 300)) for n in (1, 2)
    ]
    for writer in writers:
        writer.start()
    for writer in writers:
        writer.join(timeout=120)
        assert writer.exitcode == 0
    with Ledger(path) as ledger:
        assert ledger.totals().receipts == 600
        assert ledger.balance(ROUTER.pubkey).spent == 600 * 30


def test_a_file_that_is_not_a_ledger_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "ledger.sqlite3"
    path.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(LedgerError, match="cannot open ledger"):
        Ledger(path)
    assert path.read_bytes() == b"this is not sqlite" * 100


def test_bulk_import_across_many_batches_keeps_every_count(tmp_path: Path) -> None:
    # More lines than one batch: the multi-process verification path.
    receipts = [signed_receipt(WORKER, ROUTER) for _ in range(120)]
    lines = [json.dumps(r.to_wire()) for r in receipts]
    forged = receipts[7].to_wire()
    forged["receipt"]["nonce"] = "cd" * 16
    lines[40:40] = ["not json", json.dumps(forged)]
    lines.append(lines[0])
    with Ledger(tmp_path / "bulk.sqlite3", batch_size=25) as ledger:
        report = ledger.import_jsonl(lines)
        assert (report.added, report.duplicate, report.invalid, report.malformed) == (120, 1, 1, 1)
        assert [line for line, _ in report.problems] == [41, 42]
        assert ledger.balance(WORKER.pubkey).earned == 120 * 30
