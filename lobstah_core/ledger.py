"""The ledger: every signed receipt a node issued (as worker) or accepted (as requester).

SQLite in WAL mode, so a worker and a router sharing one home can write at once. Each receipt is
verified before it is stored and its nonce is the primary key, so a replay is a duplicate even
across restarts. Balances never re-read receipts: triggers keep a per-pubkey aggregate row up to
date inside the same transaction as the insert, which makes a balance one indexed lookup however
long the ledger grows.

The methods block; servers call them from a thread (``asyncio.to_thread``), never on the loop.
"""

from __future__ import annotations

import os
import sqlite3
import threading
import time
from collections import deque
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from itertools import chain, islice
from multiprocessing import get_context
from pathlib import Path
from typing import Any, Literal, TextIO

from pydantic import ValidationError

from .config import ALLOWANCE
from .errors import LedgerError, MalformedMessage, ProtocolError
from .protocol.receipts import Receipt, SignedReceipt, signed_receipt_text, verify_receipt
from .protocol.schemas import Balance, BalanceTotals, SelfBalance
from .protocol.wire import parse_json, parse_model

__all__ = ["Ledger", "AddResult", "ImportReport", "BalanceBucket", "iter_lines"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS receipts (
    nonce         TEXT PRIMARY KEY,
    job_id        TEXT NOT NULL,
    requester     TEXT NOT NULL,
    worker        TEXT NOT NULL,
    model         TEXT NOT NULL,
    input_tokens  INTEGER NOT NULL,
    output_tokens INTEGER NOT NULL,
    started_at    INTEGER NOT NULL,
    completed_at  INTEGER NOT NULL,
    signed        TEXT NOT NULL  -- the signed receipt's JSON, as received
);
CREATE INDEX IF NOT EXISTS receipts_by_completed ON receipts (completed_at);
CREATE INDEX IF NOT EXISTS receipts_by_worker ON receipts (worker, completed_at);
CREATE INDEX IF NOT EXISTS receipts_by_requester ON receipts (requester, completed_at);

CREATE TABLE IF NOT EXISTS balances (
    pubkey   TEXT PRIMARY KEY,
    earned   INTEGER NOT NULL DEFAULT 0,
    spent    INTEGER NOT NULL DEFAULT 0,
    -- receipts in which this pubkey is the worker; their sum over all rows counts the ledger
    issued   INTEGER NOT NULL DEFAULT 0
) WITHOUT ROWID;
"""

#: Balances follow every insert in its own transaction. Bulk imports lift it for a batch and
#: sum the batch instead (see :meth:`Ledger._insert_batch`).
_CREDIT_TRIGGER = """
CREATE TRIGGER IF NOT EXISTS receipts_credit AFTER INSERT ON receipts BEGIN
    INSERT INTO balances (pubkey, earned, issued)
        VALUES (new.worker, new.input_tokens + new.output_tokens, 1)
        ON CONFLICT (pubkey) DO UPDATE
        SET earned = earned + excluded.earned, issued = issued + 1;
    INSERT INTO balances (pubkey, spent)
        VALUES (new.requester, new.input_tokens + new.output_tokens)
        ON CONFLICT (pubkey) DO UPDATE SET spent = spent + excluded.spent;
END;
"""

#: What the trigger adds, for the rows a batch added (``rowid > ?``), in one statement each.
#: NOT INDEXED: left alone, SQLite walks the whole (worker, ...) index to group, ignoring the
#: rowid range, and an import grows quadratic.
_CREDIT_ADDED = """
INSERT INTO balances (pubkey, earned, issued)
    SELECT worker, sum(input_tokens + output_tokens), count(*)
    FROM receipts NOT INDEXED WHERE rowid > ?
    GROUP BY worker
    ON CONFLICT (pubkey) DO UPDATE
    SET earned = earned + excluded.earned, issued = issued + excluded.issued
"""
_DEBIT_ADDED = """
INSERT INTO balances (pubkey, spent)
    SELECT requester, sum(input_tokens + output_tokens)
    FROM receipts NOT INDEXED WHERE rowid > ?
    GROUP BY requester
    ON CONFLICT (pubkey) DO UPDATE SET spent = spent + excluded.spent
"""

_INSERT = """
INSERT OR IGNORE INTO receipts (nonce, job_id, requester, worker, model, input_tokens,
    output_tokens, started_at, completed_at, signed)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
"""

_VERIFIERS = os.cpu_count() or 1

AddStatus = Literal["added", "duplicate", "invalid"]


@dataclass(frozen=True)
class AddResult:
    """What :meth:`Ledger.add` did with one receipt."""

    status: AddStatus
    #: Why an ``invalid`` receipt was refused (the error's message).
    reason: str | None = None


@dataclass
class ImportReport:
    """Counts of an import: good lines added, and what was refused and why."""

    added: int = 0
    duplicate: int = 0
    invalid: int = 0
    malformed: int = 0
    #: The first few refusals as ``(line number, reason)``, for a readable report.
    problems: list[tuple[int, str]] = field(default_factory=list)

    def refuse(self, kind: Literal["invalid", "malformed"], line: int, reason: str) -> None:
        setattr(self, kind, getattr(self, kind) + 1)
        if len(self.problems) < 10:
            self.problems.append((line, reason))


@dataclass(frozen=True)
class _Refusal:
    kind: Literal["invalid", "malformed"]
    reason: str


#: What verifying one item gives: a row ready to insert, or why it was refused.
_Outcome = tuple[Any, ...] | _Refusal


@dataclass(frozen=True)
class BalanceBucket:
    """Credits earned and spent by one pubkey in one time bucket (for plots)."""

    #: Start of the bucket, milliseconds since the epoch.
    start: int
    earned: int
    spent: int


class Ledger:
    """A SQLite store of verified signed receipts with per-pubkey balances."""

    def __init__(
        self, path: Path | str, *, batch_size: int = 10_000, commit_size: int = 50_000
    ) -> None:
        """Open (creating if needed) the ledger at ``path``; ``":memory:"`` for a private one.

        A bulk import verifies ``batch_size`` receipts at a time and commits its rows in
        transactions of at least ``commit_size`` (the last one may be smaller). Random nonces
        spread a batch's inserts over the whole nonce index; a larger transaction writes each
        touched page once for more rows: at 1,000,000 rows a row's insert costs 0.73 times the
        CPU with transactions of 50,000 as with 10,000 (measured, ``bench/ledger.py``).

        Raises:
            LedgerError: the file cannot be opened or is not a ledger.
        """
        self.path = path
        self._batch_size = batch_size
        self._commit_size = commit_size
        self._lock = threading.Lock()
        try:
            if str(path) != ":memory:":
                Path(path).parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            # Autocommit mode: transactions are explicit (BEGIN IMMEDIATE) so two processes
            # writing at once queue on the lock instead of failing to upgrade a read lock.
            self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
            self._db.execute("PRAGMA busy_timeout = 30000")
            self._db.execute("PRAGMA journal_mode = WAL")
            self._db.execute("PRAGMA synchronous = NORMAL")
            self._db.executescript(f"BEGIN IMMEDIATE; {_SCHEMA} {_CREDIT_TRIGGER} COMMIT;")
        except sqlite3.DatabaseError as exc:
            raise LedgerError(f"cannot open ledger {path}: {exc}") from None

    def close(self) -> None:
        """Close the database connection."""
        with self._lock:
            self._db.close()

    def __enter__(self) -> Ledger:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def add(self, signed: SignedReceipt | dict[str, Any]) -> AddResult:
        """Verify one signed receipt and store it unless its nonce is already known.

        Returns:
            ``added``, ``duplicate`` (nonce seen before), or ``invalid`` with the reason.
        """
        try:
            row = _row(verify_receipt(signed))
        except ProtocolError as exc:
            return AddResult("invalid", exc.message)
        added = self._insert([row])
        return AddResult("added" if added else "duplicate")

    def add_verified(self, receipts: list[SignedReceipt]) -> list[bool]:
        """Store receipts whose signatures the caller has already checked, in one transaction.

        Returns:
            For each receipt, ``True`` if added, ``False`` if its nonce was already known.
        """
        if not receipts:
            return []
        with self._transaction():
            return [self._db.execute(_INSERT, _row(r)).rowcount == 1 for r in receipts]

    def add_many(self, receipts: Iterable[SignedReceipt | dict[str, Any]]) -> ImportReport:
        """Verify and store many receipts, in batched transactions (a bulk import)."""
        wire = (r.to_wire() if isinstance(r, SignedReceipt) else r for r in receipts)
        return self._ingest(enumerate(wire, start=1))

    def import_jsonl(self, lines: Iterable[str]) -> ImportReport:
        """Import a JS ``ledger.jsonl``: one signed receipt per line; blank lines are skipped.

        Good lines are stored; malformed (not a signed-receipt JSON object), invalid (bad
        signature) and duplicate lines are counted and never stored.
        """
        return self._ingest((n, line) for n, line in enumerate(lines, start=1) if line.strip())

    def _ingest(self, numbered: Iterable[tuple[int, str | dict[str, Any]]]) -> ImportReport:
        with self._import_cache():
            report = self._ingest_batches(iter(numbered))
        report.problems.sort()
        return report

    @contextmanager
    def _import_cache(self) -> Iterator[None]:
        """A 256 MiB page cache (SQLite's default: 2 MiB) while importing, the old one after.

        Nonces are random, so each insert lands on a random page of the nonce index, and each
        transaction rewrites pages of all four indexes; a cache that holds them saves reading
        them back. At 1,000,000 rows (a 1.2 GB file) a row's insert and commit cost 0.75-0.8
        times the CPU with 256 MiB as with 64 MiB (measured); SQLite takes the memory only as
        pages are read.
        """
        with self._lock:
            (previous,) = self._db.execute("PRAGMA cache_size").fetchone()
            self._db.execute("PRAGMA cache_size = -262144")
        try:
            yield
        finally:
            with self._lock:
                self._db.execute(f"PRAGMA cache_size = {int(previous)}")

    def _ingest_batches(self, items: Iterator[tuple[int, str | dict[str, Any]]]) -> ImportReport:
        report = ImportReport()
        rows: list[tuple[Any, ...]] = []
        for batch, outcomes in self._verified_batches(items):
            for (number, _), outcome in zip(batch, outcomes, strict=True):
                if isinstance(outcome, _Refusal):
                    report.refuse(outcome.kind, number, outcome.reason)
                else:
                    rows.append(outcome)
            if len(rows) >= self._commit_size:
                self._commit(report, rows)
                rows = []
        self._commit(report, rows)
        return report

    def _verified_batches(
        self, items: Iterator[tuple[int, str | dict[str, Any]]]
    ) -> Iterator[tuple[list[tuple[int, Any]], list[_Outcome]]]:
        """Batches of ``batch_size`` items, in order, each with what verifying its items gave."""
        first = list(islice(items, self._batch_size))
        second = list(islice(items, self._batch_size))
        if not second:
            # Everything fits in one batch: not worth starting verifier processes (each spawned
            # interpreter spends ~0.5 s of CPU importing this package before it verifies).
            yield first, _verified_rows([item for _, item in first])
            return
        rest = iter(lambda: list(islice(items, self._batch_size)), [])
        batches = chain([first, second], rest)
        # A bulk import. Verification (JSON parse, schema, Ed25519) is CPU-bound Python, so it
        # runs in worker processes, a few batches ahead, while this process inserts.
        pending: deque[tuple[list[Any], Future[list[_Outcome]]]] = deque()
        with ProcessPoolExecutor(
            _VERIFIERS, mp_context=get_context("spawn"), initializer=_watch_importer, initargs=(os.getpid(),)
        ) as pool:
            for batch in batches:
                pending.append((batch, pool.submit(_verified_rows, [item for _, item in batch])))
                if len(pending) > 2 * _VERIFIERS:
                    done, future = pending.popleft()
                    yield done, future.result()
            while pending:
                done, future = pending.popleft()
                yield done, future.result()

    def _commit(self, report: ImportReport, rows: list[tuple[Any, ...]]) -> None:
        added = self._insert_batch(rows)
        report.added += added
        report.duplicate += len(rows) - added

    def export_jsonl(self, out: TextIO) -> int:
        """Write every receipt, oldest stored first, as JS ``ledger.jsonl``; returns the count."""
        count = 0
        for (signed,) in self._read("SELECT signed FROM receipts ORDER BY rowid"):
            out.write(signed + "\n")
            count += 1
        return count

    def has_nonce(self, nonce: str) -> bool:
        """Whether a receipt with this nonce is stored."""
        return bool(self._read_one("SELECT 1 FROM receipts WHERE nonce = ?", (nonce,)))

    def known_nonces(self, nonces: list[str]) -> set[str]:
        """Which of ``nonces`` are stored (one indexed lookup each, 500 to a query)."""
        known: set[str] = set()
        for start in range(0, len(nonces), 500):
            chunk = nonces[start:start + 500]
            marks = ",".join("?" * len(chunk))
            known.update(n for (n,) in self._read(f"SELECT nonce FROM receipts WHERE nonce IN ({marks})", chunk))
        return known

    def issued(self, worker: str, requester: str, since_ms: int, limit: int) -> list[tuple[int, str]]:
        """``(completedAt, signed-receipt JSON text)`` of the receipts ``worker`` issued to
        ``requester`` with ``completedAt`` at or after ``since_ms``, oldest first (then in the
        order stored), at most ``limit``.

        What a worker serves on ``GET /v1/receipts`` (WIRE.md "[ext] reconciliation").
        """
        rows = self._read(
            "SELECT completed_at, signed FROM receipts WHERE requester = ? AND worker = ?"
            " AND completed_at >= ? ORDER BY completed_at, rowid LIMIT ?",
            (requester, worker, since_ms, limit),
        )
        return [(completed_at, signed) for completed_at, signed in rows]

    def newest_from(self, requester: str) -> dict[str, int]:
        """The newest ``completedAt`` per worker among the receipts ``requester`` accepted:
        the workers it has used, and where reconciling with each can start."""
        rows = self._read(
            "SELECT worker, max(completed_at) FROM receipts WHERE requester = ? GROUP BY worker",
            (requester,),
        )
        return dict(rows)

    def balance(self, pubkey: str, allowance: int = ALLOWANCE) -> SelfBalance:
        """Earned, spent, net and available credit of ``pubkey`` by this ledger."""
        row = self._read_one("SELECT earned, spent FROM balances WHERE pubkey = ?", (pubkey,))
        earned, spent = row or (0, 0)
        net = earned - spent
        return SelfBalance(
            pubkey=pubkey,
            earned=earned,
            spent=spent,
            net=net,
            allowance=allowance,
            available=allowance + net,
        )

    def available_credit(self, pubkey: str) -> int:
        """Allowance plus net credit of ``pubkey``: a worker refuses requesters at ≤ 0."""
        return self.balance(pubkey).available

    def totals(self) -> BalanceTotals:
        """Credits across the whole ledger (earned = spent = sum of credits) and its size."""
        row = self._read_one(
            "SELECT coalesce(sum(earned), 0), coalesce(sum(spent), 0),"
            " coalesce(sum(issued), 0) FROM balances"
        )
        earned, spent, count = row or (0, 0, 0)
        return BalanceTotals(earned=earned, spent=spent, receipts=count)

    def summary(self, pubkey: str) -> Balance:
        """The ``GET /balance`` body for ``pubkey``."""
        return Balance(pubkey=pubkey, totals=self.totals(), self=self.balance(pubkey))

    def recent(self, limit: int = 50, pubkey: str | None = None) -> list[SignedReceipt]:
        """The newest receipts by ``completedAt`` (optionally those ``pubkey`` is party to)."""
        if pubkey is None:
            rows = self._read(
                "SELECT signed FROM receipts ORDER BY completed_at DESC LIMIT ?", (limit,)
            )
        else:
            rows = self._read(
                "SELECT signed FROM (SELECT signed, completed_at FROM receipts WHERE worker = ?"
                " UNION ALL SELECT signed, completed_at FROM receipts"
                " WHERE requester = ? AND worker != ?)"
                " ORDER BY completed_at DESC LIMIT ?",
                (pubkey, pubkey, pubkey, limit),
            )
        return [parse_model(SignedReceipt, _parse_line(signed)) for (signed,) in rows]

    def history(self, pubkey: str, bucket_ms: int, since_ms: int = 0) -> list[BalanceBucket]:
        """Credits ``pubkey`` earned and spent per ``bucket_ms`` since ``since_ms``, oldest first."""
        if bucket_ms <= 0:
            raise ValueError("bucket_ms must be positive")
        rows = self._read(
            "SELECT bucket, sum(earned), sum(spent) FROM ("
            " SELECT completed_at / :b * :b AS bucket, input_tokens + output_tokens AS earned,"
            "  0 AS spent FROM receipts WHERE worker = :pk AND completed_at >= :since"
            " UNION ALL"
            " SELECT completed_at / :b * :b, 0, input_tokens + output_tokens FROM receipts"
            "  WHERE requester = :pk AND completed_at >= :since"
            ") GROUP BY bucket ORDER BY bucket",
            {"b": bucket_ms, "pk": pubkey, "since": since_ms},
        )
        return [BalanceBucket(start, earned, spent) for start, earned, spent in rows]

    def _insert(self, rows: list[tuple[Any, ...]]) -> int:
        if not rows:
            return 0
        with self._transaction():
            # rowcount sums the rows each INSERT added (OR IGNORE skips known nonces) and,
            # unlike total_changes, leaves out the trigger's writes.
            return self._db.executemany(_INSERT, rows).rowcount

    def _insert_batch(self, rows: list[tuple[Any, ...]]) -> int:
        """:meth:`_insert` for a bulk import: the same rows and balances for about half the CPU.

        The trigger's two upserts per row are half an insert's cost (61 against 31 µs a row at
        100,000 rows, measured); here the batch is inserted without it and the balances take the
        batch's sums instead. Dropping and re-creating the trigger happens inside the batch's
        transaction, so no other connection ever sees the ledger without it, and a failure rolls
        both back.
        """
        if not rows:
            return 0
        with self._transaction():
            self._db.execute("DROP TRIGGER receipts_credit")
            # New rows get rowids above the largest (the ledger never deletes), so rowid > last
            # is exactly what this batch added, duplicates left out.
            (last,) = self._db.execute("SELECT coalesce(max(rowid), 0) FROM receipts").fetchone()
            added = self._db.executemany(_INSERT, rows).rowcount
            self._db.execute(_CREDIT_ADDED, (last,))
            self._db.execute(_DEBIT_ADDED, (last,))
            self._db.execute(_CREDIT_TRIGGER)
            return added

    def _read(self, sql: str, params: Any = ()) -> list[tuple[Any, ...]]:
        with self._lock:
            return self._db.execute(sql, params).fetchall()

    def _read_one(self, sql: str, params: Any = ()) -> tuple[Any, ...] | None:
        with self._lock:
            return self._db.execute(sql, params).fetchone()

    def _transaction(self) -> _Transaction:
        return _Transaction(self._db, self._lock)


class _Transaction:
    """``BEGIN IMMEDIATE`` … ``COMMIT`` under the connection lock; rolls back on error."""

    def __init__(self, db: sqlite3.Connection, lock: threading.Lock) -> None:
        self._db = db
        self._lock = lock

    def __enter__(self) -> None:
        self._lock.acquire()
        try:
            self._db.execute("BEGIN IMMEDIATE")
        except BaseException:
            self._lock.release()
            raise

    def __exit__(self, exc_type: object, *rest: object) -> None:
        try:
            self._db.execute("ROLLBACK" if exc_type else "COMMIT")
        finally:
            self._lock.release()


def _watch_importer(importer_pid: int) -> None:
    """In a verifier process: exit once the importing process is gone.

    An importer killed outright (``kill``, the OOM killer) tells its verifiers nothing, and each
    holds both ends of the pool's queues, so none ever sees them close: they would sleep on for
    good. A thread here checks the parent once a second instead.
    """
    threading.Thread(target=_exit_when_orphaned, args=(importer_pid,), name="importer-watch", daemon=True).start()


def _exit_when_orphaned(importer_pid: int) -> None:
    while os.getppid() == importer_pid:
        time.sleep(1.0)
    os._exit(1)


def _verified_rows(items: list[str | dict[str, Any]]) -> list[_Outcome]:
    """Parse (if a jsonl line) and verify each item: a row to insert, or why it was refused."""
    outcomes: list[_Outcome] = []
    for item in items:
        try:
            body = _parse_line(item) if isinstance(item, str) else item
            outcomes.append(_row(verify_receipt(body)))
        except MalformedMessage as exc:
            outcomes.append(_Refusal("malformed", exc.message))
        except ProtocolError as exc:
            outcomes.append(_Refusal("invalid", exc.message))
    return outcomes


def _parse_line(line: str) -> SignedReceipt | Any:
    """A signed receipt's JSON text as its model, or, if pydantic refuses it, as parsed JSON.

    pydantic parses and validates a good line in one pass, for about 0.6 of the cost of
    ``json.loads`` then validation (measured). It is at least as strict as ``json.loads`` and
    reads what both accept the same way (tests/ledger), so a line it refuses (a lone surrogate,
    for one, which ``json.loads`` takes) goes the general way, where its problem is named as for
    every other input.
    """
    try:
        return SignedReceipt.model_validate_json(line)
    except ValidationError:
        return parse_json(line)


def _row(signed: SignedReceipt) -> tuple[Any, ...]:
    """The ``receipts`` row of a verified receipt."""
    receipt: Receipt = signed.receipt
    text = signed_receipt_text(signed)
    row = (
        receipt.nonce,
        receipt.job_id,
        receipt.requester_pubkey,
        receipt.worker_pubkey,
        receipt.model,
        receipt.input_tokens,
        receipt.output_tokens,
        receipt.started_at,
        receipt.completed_at,
        text,
    )
    if text.isascii() or not _has_surrogate(text):
        return row
    # JSON.parse takes a lone surrogate ("\ud800") and the signature covers it (canonical JSON
    # escapes it), but SQLite holds UTF-8 only and refused the whole batch. The JSON keeps its
    # lone surrogates escaped as JSON.stringify writes them ("\udfff", other characters raw), so
    # it reads back the same and exports as the JS line it came from; the columns' copies hold
    # the escape as text.
    return tuple(_escape_surrogates(value) if isinstance(value, str) else value for value in row)


def _has_surrogate(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def _escape_surrogates(value: str) -> str:
    return value.encode("utf-8", "backslashreplace").decode("utf-8")


def iter_lines(path: Path) -> Iterator[str]:
    """Lines of a text file, read lazily (imports of large ledgers stay small in memory)."""
    with path.open(encoding="utf-8", errors="replace") as handle:
        yield from handle
