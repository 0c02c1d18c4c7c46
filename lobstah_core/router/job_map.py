"""Router-side job ids: which peer runs each job, under which worker job id (SQLite).

The router hands out its own ids so clients never learn (or depend on) which worker ran a job,
and keeps the mapping on disk so polls survive a router restart. ``ledgered`` records that the
job's receipt has been accepted, so it is taken once, on the first ``done`` poll.
"""

from __future__ import annotations

import threading
import uuid
from dataclasses import dataclass
from pathlib import Path

from ..sqlite_file import open_database

__all__ = ["JobMap", "MappedJob"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS router_jobs (
    job_id        TEXT PRIMARY KEY,
    peer          TEXT NOT NULL,
    worker_job_id TEXT NOT NULL,
    created_at    INTEGER NOT NULL,
    ledgered      INTEGER NOT NULL DEFAULT 0
);
"""


@dataclass(frozen=True)
class MappedJob:
    job_id: str
    peer: str
    worker_job_id: str
    created_at: int
    ledgered: bool


class JobMap:
    """Router job id → (peer, worker job id)."""

    def __init__(self, path: Path) -> None:
        self._lock = threading.Lock()
        self._db = open_database(path, _SCHEMA)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def create(self, peer: str, worker_job_id: str, created_at: int) -> MappedJob:
        job = MappedJob(f"rjob-{uuid.uuid4().hex}", peer, worker_job_id, created_at, False)
        with self._lock:
            self._db.execute(
                "INSERT INTO router_jobs (job_id, peer, worker_job_id, created_at) VALUES (?, ?, ?, ?)",
                (job.job_id, peer, worker_job_id, created_at),
            )
        return job

    def get(self, job_id: str) -> MappedJob | None:
        with self._lock:
            row = self._db.execute(
                "SELECT job_id, peer, worker_job_id, created_at, ledgered FROM router_jobs WHERE job_id = ?",
                (job_id,),
            ).fetchone()
        return None if row is None else MappedJob(row[0], row[1], row[2], row[3], bool(row[4]))

    def mark_ledgered(self, job_id: str) -> bool:
        """Mark the job's receipt as taken; ``False`` if it already was (take it once)."""
        with self._lock:
            cursor = self._db.execute(
                "UPDATE router_jobs SET ledgered = 1 WHERE job_id = ? AND ledgered = 0", (job_id,)
            )
        return cursor.rowcount == 1

    def forget(self, job_id: str) -> None:
        with self._lock:
            self._db.execute("DELETE FROM router_jobs WHERE job_id = ?", (job_id,))
