"""Opening a SQLite file the way every store of a node uses it."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from .errors import StoreError

__all__ = ["open_database"]


def open_database(path: Path, schema: str) -> sqlite3.Connection:
    """A connection to ``path`` (its folder created) with ``schema`` applied: autocommit
    (transactions are opened with an explicit ``BEGIN``), usable from any thread (the store
    holds a lock), WAL so readers never wait for the writer, and 30 s of patience with other
    processes' locks.

    Raises:
        StoreError: ``path`` is not a SQLite database (or cannot be read as one).
    """
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    try:
        db.execute("PRAGMA busy_timeout = 30000")
        db.execute("PRAGMA journal_mode = WAL")
        db.executescript(schema)
    except sqlite3.DatabaseError as exc:
        db.close()
        raise StoreError(f"cannot open {path}: {exc}") from None
    return db
