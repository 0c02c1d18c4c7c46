"""Opening a SQLite file the way every store of a node uses it."""

from __future__ import annotations

import sqlite3
from pathlib import Path

__all__ = ["open_database"]


def open_database(path: Path, schema: str) -> sqlite3.Connection:
    """A connection to ``path`` (its folder created) with ``schema`` applied: autocommit
    (transactions are opened with an explicit ``BEGIN``), usable from any thread (the store
    holds a lock), WAL so readers never wait for the writer, and 30 s of patience with other
    processes' locks."""
    path.parent.mkdir(parents=True, exist_ok=True)
    db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    db.execute("PRAGMA journal_mode = WAL")
    db.execute("PRAGMA busy_timeout = 30000")
    db.executescript(schema)
    return db
