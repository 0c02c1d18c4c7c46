from __future__ import annotations

import io
import json
import math
import multiprocessing
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from lobstah_core.errors import LedgerError, MalformedMessage, ProtocolError
from lobstah_core.ledger import ImportReport, Ledger
from lobstah_core.protocol import Identity, sign_receipt, verify_receipt
from lobstah_core.protocol.wire import parse_json

from ..factories import receipt_body, signed_receipt

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
    with Ledger(tmp_path / "bulk.sqlite3", batch_size=25, commit_size=30) as ledger:
        report = ledger.import_jsonl(lines)
        assert (report.added, report.duplicate, report.invalid, report.malformed) == (120, 1, 1, 1)
        assert [line for line, _ in report.problems] == [41, 42]
        assert ledger.balance(WORKER.pubkey).earned == 120 * 30


def test_bulk_import_keeps_balances_as_receipts_added_one_by_one(tmp_path: Path) -> None:
    # A bulk import sums each transaction's balances itself; they must come out as the
    # per-receipt trigger makes them, with duplicates inside a transaction and across
    # transactions (16-receipt batches committed 32 at a time), a worker paying itself, and a
    # ledger that already holds receipts.
    earlier = [signed_receipt(WORKER, ROUTER, inputTokens=n) for n in range(5)]
    receipts = [signed_receipt(WORKER if n % 3 else OTHER, ROUTER, outputTokens=n) for n in range(90)]
    receipts += [signed_receipt(ROUTER, ROUTER, inputTokens=4), signed_receipt(OTHER, WORKER)]
    lines = [json.dumps(r.to_wire()) for r in [*receipts[:10], receipts[3], *receipts[10:], receipts[50], earlier[0]]]
    with Ledger(tmp_path / "bulk.sqlite3", batch_size=16, commit_size=20) as bulk, Ledger(tmp_path / "one.sqlite3") as one:
        for r in earlier:
            assert bulk.add(r).status == one.add(r).status == "added"
        report = bulk.import_jsonl(lines)
        for r in receipts:
            one.add(r)
        assert (report.added, report.duplicate) == (len(receipts), 3)
        late = signed_receipt(OTHER, ROUTER, inputTokens=1000)
        assert bulk.add(late).status == one.add(late).status == "added"
        for key in (WORKER, ROUTER, OTHER):
            assert bulk.summary(key.pubkey) == one.summary(key.pubkey)
        assert bulk.totals().receipts == 5 + len(receipts) + 1


def _refusals(report: ImportReport) -> tuple[int, int, int, list[tuple[int, str]]]:
    return report.added, report.invalid, report.malformed, report.problems


def _line_with(raw: str, **extra: Any) -> str:
    """A signed receipt's JSON line whose receipt has ``raw`` spliced in after ``"version":1``."""
    body = receipt_body(WORKER, ROUTER, **extra)
    line = json.dumps(sign_receipt(body, WORKER).to_wire(), separators=(",", ":"))
    return line.replace('"version":1', '"version":1' + raw, 1)


@pytest.mark.parametrize(
    "line",
    [
        _line_with(',"x":Infinity', x=math.inf),
        _line_with(',"x":NaN', x=math.nan),
        _line_with(',"x":1e400', x=math.inf),
        _line_with(',"x":-0.0', x=-0.0),
        _line_with(',"x":0.1000000000000000055511151231257827', x=0.1),
        _line_with(',"x":"\\ud800 lone"', x="\ud800 lone"),
        _line_with(',"x":"\\ud83e\\udd99"', x="🦙"),
        _line_with(',"model":"other"'),  # a repeated key: the last one counts
        _line_with(',"x":' + "9" * 401),
        _line_with(',"x":' + "9" * 5000),
        _line_with(',"x":' + "[" * 3000 + "]" * 3000),
        _line_with(',"x":"tab\there"', x="tab\there"),
        _line_with(',"x":01', x=1),
        _line_with(',"version":1.0'),
        _line_with(',"version":true'),
        "\ufeff" + _line_with(""),
        _line_with("") + " trailing",
    ],
)
def test_each_line_reads_as_json_loads_and_pydantic_read_it(line: str) -> None:
    # import_jsonl validates good lines with pydantic's own JSON parser; any line must come
    # out as the general route (json.loads, then the model) reads it, refusals word for word.
    try:
        verify_receipt(parse_json(line))
        expected: tuple[int, int, int, list[tuple[int, str]]] = (1, 0, 0, [])
    except MalformedMessage as exc:
        expected = (0, 0, 1, [(1, exc.message)])
    except ProtocolError as exc:
        expected = (0, 1, 0, [(1, exc.message)])
    with Ledger(":memory:") as ledger:
        assert _refusals(ledger.import_jsonl([line])) == expected


def test_a_lone_surrogate_is_ledgered_beside_good_lines_and_exported_intact(ledger: Ledger, tmp_path: Path) -> None:
    # JSON.parse takes "\ud800" and the signature covers it; SQLite holds only UTF-8, and
    # such a line used to abort the whole import.
    odd = signed_receipt(WORKER, ROUTER, model="llama \ud800", jobId="\udfff")
    good = [signed_receipt(WORKER, ROUTER) for _ in range(2)]
    lines = [json.dumps(r.to_wire()) for r in (good[0], odd, good[1])]
    report = ledger.import_jsonl(lines)
    assert (report.added, report.problems) == (3, [])
    assert [r.receipt.model for r in ledger.recent(limit=3) if r.receipt.nonce == odd.receipt.nonce] == ["llama \ud800"]
    out = io.StringIO()
    ledger.export_jsonl(out)
    with Ledger(tmp_path / "copy.sqlite3") as copy:
        assert copy.import_jsonl(out.getvalue().splitlines()).added == 3
        assert copy.summary(ROUTER.pubkey) == ledger.summary(ROUTER.pubkey)



def test_a_lone_surrogate_beside_other_non_ascii_exports_as_the_js_line_it_came_from(ledger: Ledger) -> None:
    # JSON.stringify escapes a lone surrogate ("\udfff") and writes every other character raw;
    # the export used to escape all non-ASCII too ("\u00e9"), so the JS ledger came back changed.
    odd = signed_receipt(WORKER, ROUTER, jobId="lone \udfff é", model="llama 🦞")
    js_line = json.dumps(odd.to_wire(), separators=(",", ":"), ensure_ascii=False).replace("\udfff", "\\udfff")
    assert '"jobId":"lone \\udfff é"' in js_line
    assert ledger.import_jsonl([js_line]).added == 1
    out = io.StringIO()
    ledger.export_jsonl(out)
    assert out.getvalue() == js_line + "\n"


def _children(pid: int) -> list[int]:
    """The processes whose parent is ``pid`` (Linux's /proc)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue  # it ended while we looked
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(entry.name))
    return found


def _verifiers(pid: int) -> list[int]:
    """``pid``'s verifier processes (spawned interpreters running ``spawn_main``)."""
    found = []
    for child in _children(pid):
        try:
            if b"spawn_main" in Path(f"/proc/{child}/cmdline").read_bytes():
                found.append(child)
        except OSError:
            continue
    return found


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads processes from Linux's /proc")
def test_verifiers_do_not_outlive_an_import_that_is_killed(tmp_path: Path) -> None:
    """``kill`` (SIGTERM) or the OOM killer stops ``ledger import`` without a word to its
    verifier processes: they used to live on for good, asleep on a queue nobody reads."""
    importer = subprocess.Popen(
        [sys.executable, "-m", "lobstah_core", "ledger", "import", "-"],
        stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        env={**os.environ, "LOBSTAH_HOME": str(tmp_path / "home")},
    )
    verifiers: list[int] = []
    try:
        # Two batches of lines start the verifiers; stdin stays open, so the import waits on.
        importer.stdin.write(b"not a receipt\n" * 20_001)
        importer.stdin.flush()
        deadline = time.monotonic() + 60
        while len(verifiers) < 1 and time.monotonic() < deadline:
            time.sleep(0.2)
            verifiers = _verifiers(importer.pid)
        assert verifiers, "the import started no verifier processes"
        importer.send_signal(signal.SIGKILL)
        importer.wait()
        deadline = time.monotonic() + 30
        while any(Path(f"/proc/{pid}").exists() for pid in verifiers) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not [pid for pid in verifiers if Path(f"/proc/{pid}").exists()]
    finally:
        importer.kill()
        importer.wait()
        for pid in verifiers:
            if Path(f"/proc/{pid}").exists():
                os.kill(pid, signal.SIGKILL)
