"""Files and batches of the Batch API, and every request of every batch, in SQLite.

All of a batch's state lives here, so a router restarted mid-batch picks up where it stopped:
an item is ``pending`` until its outcome is stored (``done``: its answer; ``error``: its error
line), in one transaction with nothing else, so a restart re-sends exactly the items whose
outcome was not stored. Objects are kept in OpenAI's JSON shapes ("Files API: the file object",
"Batch API: the batch object"); ``request_counts`` are counted from the items when read, and
so is ``items_per_peer`` ([ext]: completed items by the pubkey of the peer that answered them).
"""

from __future__ import annotations

import json
import threading
import uuid
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from ..sqlite_file import open_database
from typing import Any

from .batch_input import BatchLine

__all__ = ["BatchStore", "PendingItem", "ACTIVE_STATUSES", "new_id", "file_object"]

#: Statuses of a batch the scheduler still has to work on.
ACTIVE_STATUSES = ("validating", "in_progress", "finalizing", "cancelling")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS files (
    id         TEXT PRIMARY KEY,
    object     TEXT NOT NULL,
    content    BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS batches (
    id         TEXT PRIMARY KEY,
    created_at INTEGER NOT NULL,
    object     TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS batch_items (
    batch_id   TEXT NOT NULL,
    line       INTEGER NOT NULL,
    custom_id  TEXT NOT NULL,
    model      TEXT NOT NULL,
    body       BLOB NOT NULL,
    state      TEXT NOT NULL DEFAULT 'pending',
    peer       TEXT,
    outcome    TEXT,
    PRIMARY KEY (batch_id, line)
);
"""


def new_id(prefix: str) -> str:
    """An OpenAI-looking object id: ``file-…``, ``batch_…``, ``batch_req_…``."""
    return f"{prefix}{uuid.uuid4().hex}"


def file_object(file_id: str, filename: str, size: int, created_at: int, purpose: str) -> dict[str, Any]:
    """An OpenAI file object; ``status`` is always ``processed`` (files are checked on upload),
    ``size`` in bytes, ``created_at`` in Unix seconds."""
    return {
        "id": file_id, "object": "file", "bytes": size, "created_at": created_at,
        "filename": filename, "purpose": purpose, "status": "processed",
    }


@dataclass(frozen=True)
class PendingItem:
    """A request of a batch without a stored outcome, to ``url`` (the batch's endpoint)."""

    batch_id: str
    line: int
    custom_id: str
    url: str
    model: str
    body: bytes


class BatchStore:
    """The Batch API's SQLite file; every method is safe from any thread (one lock)."""

    def __init__(self, path: Path) -> None:
        self._lock = threading.Lock()
        self._db = open_database(path, _SCHEMA)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    # Files

    def add_file(self, file: dict[str, Any], content: bytes) -> None:
        """Store a file object (``file["id"]`` is its key) and its bytes."""
        with self._lock:
            self._db.execute("INSERT INTO files VALUES (?, ?, ?)", (file["id"], json.dumps(file), content))

    def file(self, file_id: str) -> dict[str, Any] | None:
        row = self._one("SELECT object FROM files WHERE id = ?", (file_id,))
        return None if row is None else json.loads(row[0])

    def file_content(self, file_id: str) -> bytes | None:
        row = self._one("SELECT content FROM files WHERE id = ?", (file_id,))
        return None if row is None else bytes(row[0])

    def delete_file(self, file_id: str) -> bool:
        with self._lock:
            return self._db.execute("DELETE FROM files WHERE id = ?", (file_id,)).rowcount == 1

    # Batches

    def add_batch(self, batch: dict[str, Any], items: list[BatchLine]) -> None:
        """Store a new batch object and its requests, all ``pending``, in one transaction."""
        rows = [(batch["id"], i.line, i.custom_id, i.model, i.body) for i in items]
        with self._lock, self._db:
            self._db.execute("BEGIN")
            self._db.execute("INSERT INTO batches VALUES (?, ?, ?)", (batch["id"], batch["created_at"], json.dumps(batch)))
            self._db.executemany(
                "INSERT INTO batch_items (batch_id, line, custom_id, model, body) VALUES (?, ?, ?, ?, ?)", rows
            )

    def batch(self, batch_id: str) -> dict[str, Any] | None:
        """The batch object with its ``request_counts``, or ``None``."""
        row = self._one("SELECT object FROM batches WHERE id = ?", (batch_id,))
        return None if row is None else self._with_counts(json.loads(row[0]))

    def batches(self, after: str | None, limit: int) -> tuple[list[dict[str, Any]], bool]:
        """Batches newest first (in the order they were made), those after the batch
        ``after`` in that order; and whether more follow."""
        with self._lock:
            if after is None:
                rows = self._db.execute(
                    "SELECT object FROM batches ORDER BY rowid DESC LIMIT ?", (limit + 1,)
                ).fetchall()
            else:
                rows = self._db.execute(
                    "SELECT object FROM batches WHERE rowid < (SELECT rowid FROM batches WHERE id = ?) "
                    "ORDER BY rowid DESC LIMIT ?",
                    (after, limit + 1),
                ).fetchall()
        found = [self._with_counts(json.loads(row[0])) for row in rows[:limit]]
        return found, len(rows) > limit

    def active_batch_ids(self) -> list[str]:
        """Ids of the batches still to work on, oldest first."""
        marks = ",".join("?" * len(ACTIVE_STATUSES))
        with self._lock:
            rows = self._db.execute(
                f"SELECT id FROM batches WHERE json_extract(object, '$.status') IN ({marks}) ORDER BY rowid",
                ACTIVE_STATUSES,
            ).fetchall()
        return [row[0] for row in rows]

    def update_batch(self, batch_id: str, **fields: Any) -> dict[str, Any]:
        """Set fields of the batch object; returns it (with counts)."""
        with self._lock, self._db:
            self._db.execute("BEGIN")
            row = self._db.execute("SELECT object FROM batches WHERE id = ?", (batch_id,)).fetchone()
            batch = {**json.loads(row[0]), **fields}
            self._db.execute("UPDATE batches SET object = ? WHERE id = ?", (json.dumps(batch), batch_id))
        return self._with_counts(batch)

    # Items

    def pending_items(self, batch_id: str) -> list[PendingItem]:
        """The batch's requests without an outcome, in input order."""
        with self._lock:
            (url,) = self._db.execute(
                "SELECT json_extract(object, '$.endpoint') FROM batches WHERE id = ?", (batch_id,)
            ).fetchone()
            rows = self._db.execute(
                "SELECT line, custom_id, model, body FROM batch_items WHERE batch_id = ? AND state = 'pending' ORDER BY line",
                (batch_id,),
            ).fetchall()
        return [PendingItem(batch_id, line, cid, url, model, bytes(body)) for line, cid, model, body in rows]

    def settle(self, batch_id: str, line: int, state: str, outcome: dict[str, Any], peer: str | None) -> bool:
        """Store an item's outcome (``done`` or ``error``) once; ``False`` if it had one."""
        with self._lock:
            cursor = self._db.execute(
                "UPDATE batch_items SET state = ?, outcome = ?, peer = ? WHERE batch_id = ? AND line = ? AND state = 'pending'",
                (state, json.dumps(outcome, separators=(",", ":")), peer, batch_id, line),
            )
        return cursor.rowcount == 1

    def settle_pending(self, batch_id: str, outcome_of: Any, skip: set[int]) -> int:
        """Give every pending item of the batch but the lines in ``skip`` (out at a peer) the
        error outcome ``outcome_of(custom_id)`` (expiry, cancellation); returns how many."""
        with self._lock, self._db:
            self._db.execute("BEGIN")
            rows = self._db.execute(
                "SELECT line, custom_id FROM batch_items WHERE batch_id = ? AND state = 'pending'", (batch_id,)
            ).fetchall()
            rows = [(line, custom_id) for line, custom_id in rows if line not in skip]
            self._db.executemany(
                "UPDATE batch_items SET state = 'error', outcome = ? WHERE batch_id = ? AND line = ?",
                [(json.dumps(outcome_of(cid), separators=(",", ":")), batch_id, line) for line, cid in rows],
            )
        return len(rows)

    def outcome_lines(self, batch_id: str, state: str) -> bytes:
        """The JSONL of the batch's outcomes in ``state`` (``done``: output file, ``error``:
        error file), in input order."""
        with self._lock:
            rows = self._db.execute(
                "SELECT outcome FROM batch_items WHERE batch_id = ? AND state = ? ORDER BY line", (batch_id, state)
            ).fetchall()
        return b"".join(row[0].encode() + b"\n" for row in rows)

    def items_per_peer(self, batch_id: str) -> dict[str, int]:
        """Completed items of the batch by the peer that answered them."""
        return self._tally(batch_id)[1]

    def _with_counts(self, batch: dict[str, Any]) -> dict[str, Any]:
        counts, per_peer = self._tally(batch["id"])
        return {**batch, "request_counts": counts, "items_per_peer": per_peer}

    def _tally(self, batch_id: str) -> tuple[dict[str, int], dict[str, int]]:
        """The batch's ``request_counts``, and its completed items by peer: one query."""
        with self._lock:
            rows = self._db.execute(
                "SELECT state, peer, COUNT(*) FROM batch_items WHERE batch_id = ? GROUP BY state, peer", (batch_id,)
            ).fetchall()
        by_state: Counter[str] = Counter()
        per_peer: dict[str, int] = {}
        for state, peer, count in rows:
            by_state[state] += count
            if state == "done" and peer is not None:
                per_peer[peer] = count
        total = sum(by_state.values())
        return {"total": total, "completed": by_state["done"], "failed": by_state["error"]}, per_peer

    def _one(self, sql: str, params: tuple[Any, ...]) -> tuple[Any, ...] | None:
        with self._lock:
            return self._db.execute(sql, params).fetchone()
