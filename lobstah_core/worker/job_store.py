"""The persistent job queue of a worker (SQLite in the worker's home).

Queued jobs survive a restart and run afterwards; a job that was running when the process died
is marked ``error`` / ``interrupted`` on the next start (its engine call is gone, and no receipt
was issued). Done jobs expire after the TTL, failed ones after half of it.

Methods block; the worker calls them through ``asyncio.to_thread``.
"""

from __future__ import annotations

import json
import threading
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..protocol.receipts import SignedReceipt
from ..sqlite_file import open_database
from ..protocol.schemas import JobCounts, JobRecord

__all__ = ["JobStore", "ClaimedJob"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    job_id       TEXT PRIMARY KEY,
    status       TEXT NOT NULL CHECK (status IN ('queued', 'running', 'done', 'error')),
    requester    TEXT NOT NULL,
    request      TEXT NOT NULL,
    metadata     TEXT,
    created_at   INTEGER NOT NULL,
    started_at   INTEGER,
    completed_at INTEGER,
    result       TEXT,
    receipt      TEXT,
    error        TEXT
);
CREATE INDEX IF NOT EXISTS jobs_by_status ON jobs (status, created_at);
"""


@dataclass(frozen=True)
class ClaimedJob:
    """A job taken off the queue to run now."""

    job_id: str
    requester: str
    request: dict[str, Any]


class JobStore:
    """Jobs and their results, in SQLite."""

    def __init__(self, path: Path, ttl_seconds: int = 3600) -> None:
        """Open (or create) the queue at ``path``.

        Raises:
            StoreError: ``path`` is not a SQLite database.
        """
        self._ttl_ms = ttl_seconds * 1000
        self._lock = threading.Lock()
        self._db = open_database(path, _SCHEMA)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def create(
        self, requester: str, request: dict[str, Any], metadata: dict[str, str] | None, now_ms: int
    ) -> JobRecord:
        """Queue a new job."""
        job_id = f"job-{uuid.uuid4().hex}"
        self._write(
            "INSERT INTO jobs (job_id, status, requester, request, metadata, created_at)"
            " VALUES (?, 'queued', ?, ?, ?, ?)",
            (job_id, requester, json.dumps(request), _dump(metadata), now_ms),
        )
        return JobRecord(job_id=job_id, status="queued", created_at=now_ms)

    def get(self, job_id: str, now_ms: int) -> JobRecord | None:
        """The job's record, or ``None`` if unknown or expired."""
        with self._lock:
            row = self._db.execute(
                "SELECT job_id, status, created_at, started_at, completed_at, result, receipt,"
                " error, metadata FROM jobs WHERE job_id = ?",
                (job_id,),
            ).fetchone()
        if row is None:
            return None
        record = _record(row)
        if self._expired(record, now_ms):
            return None
        return record

    def claim_next(self, now_ms: int) -> ClaimedJob | None:
        """Mark the oldest queued job running and return it."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                row = self._db.execute(
                    "SELECT job_id, requester, request FROM jobs WHERE status = 'queued'"
                    " ORDER BY created_at, rowid LIMIT 1"
                ).fetchone()
                if row is not None:
                    self._db.execute(
                        "UPDATE jobs SET status = 'running', started_at = ? WHERE job_id = ?",
                        (now_ms, row[0]),
                    )
            finally:
                self._db.execute("COMMIT")
        if row is None:
            return None
        return ClaimedJob(row[0], row[1], json.loads(row[2]))

    def finish(self, job_id: str, result: dict[str, Any], receipt: SignedReceipt, now_ms: int) -> None:
        self._write(
            "UPDATE jobs SET status = 'done', completed_at = ?, result = ?, receipt = ?"
            " WHERE job_id = ?",
            (now_ms, json.dumps(result), json.dumps(receipt.to_wire()), job_id),
        )

    def fail(self, job_id: str, error: dict[str, Any], now_ms: int) -> None:
        self._write(
            "UPDATE jobs SET status = 'error', completed_at = ?, error = ? WHERE job_id = ?",
            (now_ms, json.dumps(error), job_id),
        )

    def cancel(self, job_id: str) -> bool:
        """Remove a queued job; ``False`` if it is not queued (running, finished or unknown)."""
        return self._write("DELETE FROM jobs WHERE job_id = ? AND status = 'queued'", (job_id,)) > 0

    def interrupt_running(self, now_ms: int) -> int:
        """On start: jobs left ``running`` by a dead process become ``error``/``interrupted``."""
        error = {"type": "interrupted", "message": "the worker stopped while this job was running"}
        return self._write(
            "UPDATE jobs SET status = 'error', completed_at = ?, error = ? WHERE status = 'running'",
            (now_ms, json.dumps(error)),
        )

    def expire(self, now_ms: int) -> int:
        """Delete done jobs older than the TTL and failed ones older than half of it."""
        return self._write(
            "DELETE FROM jobs WHERE (status = 'done' AND completed_at < ?)"
            " OR (status = 'error' AND completed_at < ?)",
            (now_ms - self._ttl_ms, now_ms - self._ttl_ms // 2),
        )

    def counts(self) -> JobCounts:
        with self._lock:
            rows = self._db.execute("SELECT status, count(*) FROM jobs GROUP BY status").fetchall()
        return JobCounts(**{"queued": 0, "running": 0, "done": 0, "error": 0, **dict(rows)})

    def _expired(self, record: JobRecord, now_ms: int) -> bool:
        if record.completed_at is None:
            return False
        ttl = self._ttl_ms if record.status == "done" else self._ttl_ms // 2
        return now_ms - record.completed_at > ttl

    def _write(self, sql: str, params: tuple[Any, ...]) -> int:
        with self._lock:
            return self._db.execute(sql, params).rowcount


def _dump(value: Any) -> str | None:
    return None if value is None else json.dumps(value)


def _record(row: tuple[Any, ...]) -> JobRecord:
    job_id, status, created, started, completed, result, receipt, error, metadata = row
    fields: dict[str, Any] = {"job_id": job_id, "status": status, "created_at": created}
    optional = {
        "started_at": started,
        "completed_at": completed,
        "result": json.loads(result) if result else None,
        "signed_receipt": json.loads(receipt) if receipt else None,
        "error": json.loads(error) if error else None,
        "metadata": json.loads(metadata) if metadata else None,
    }
    fields.update({k: v for k, v in optional.items() if v is not None})
    return JobRecord.model_validate(fields)
