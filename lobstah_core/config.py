"""Where a node keeps its files, and the defaults of the grid, in one place.

The CLI, ``serve`` and the TUI all build the same :class:`Settings` from the environment.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from typing import Annotated

from pydantic import AfterValidator, BaseModel, Field, StringConstraints

from .protocol.announcements import Tier
from .timeouts import Timeouts

__all__ = ["Settings", "WorkerSettings", "RouterSettings", "AdvertiseSettings", "WORKER_PORT", "ROUTER_PORT", "TRACKER_PORT", "DEFAULT_HOST", "ALLOWANCE", "Label"]

WORKER_PORT = 17474
ROUTER_PORT = 17475
TRACKER_PORT = 17476
#: Every server binds loopback unless told otherwise.
DEFAULT_HOST = "127.0.0.1"
#: Bootstrap credit every pubkey starts with, in tokens.
ALLOWANCE = 10_000

#: A name an operator gives a worker or a peer: shown in peer lists, tables and announcements,
#: so one line of printable text (no control characters), at most 64 characters.
Label = Annotated[str, StringConstraints(min_length=1, max_length=64, pattern=r"^[^\x00-\x1f\x7f]+$")]


def _usable_api_key(key: str) -> str:
    # The router compares it with the header's value stripped of spaces, and an empty key
    # would admit every request that sends none while refusing every SDK (they always send one).
    if not key or key != key.strip() or any(ord(c) < 0x20 or ord(c) == 0x7F for c in key):
        raise ValueError("must be a non-empty key without spaces at its ends or control characters")
    return key


#: A router's API key: what clients send as ``Authorization: Bearer <key>``.
ApiKey = Annotated[str, AfterValidator(_usable_api_key)]


class Settings(BaseModel):
    """Paths of a node's data directory (``~/.lobstah`` or ``$LOBSTAH_HOME``)."""

    home: Path
    identity_path: Path
    #: The JS-format ledger (``$LOBSTAH_LEDGER``), the default for ``ledger import/export``.
    jsonl_ledger_path: Path

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Settings from ``LOBSTAH_HOME``, ``LOBSTAH_IDENTITY`` and ``LOBSTAH_LEDGER``."""
        env = os.environ if environ is None else environ
        home = Path(env.get("LOBSTAH_HOME") or Path.home() / ".lobstah").expanduser()
        return cls(
            home=home,
            identity_path=Path(env.get("LOBSTAH_IDENTITY") or home / "identity.json").expanduser(),
            jsonl_ledger_path=Path(env.get("LOBSTAH_LEDGER") or home / "ledger.jsonl").expanduser(),
        )

    @property
    def ledger_path(self) -> Path:
        """The SQLite ledger of signed receipts."""
        return self.home / "ledger.sqlite3"

    @property
    def peers_path(self) -> Path:
        """The peer list, a JSON array of ``{pubkey, url, label?}`` (JS format)."""
        return self.home / "peers.json"


class WorkerSettings(BaseModel):
    """How a worker runs; the CLI, ``serve`` and the TUI all build this."""

    host: str = DEFAULT_HOST
    port: int = Field(default=WORKER_PORT, ge=0, le=65535)
    tier: Tier = "best-effort"
    #: Engine calls at once.
    concurrency: int = Field(default=2, ge=1)
    #: Requests allowed to wait for a slot; beyond that, 429 overloaded.
    max_queue: int = Field(default=16, ge=0)
    #: Async jobs allowed in the queue at once.
    max_jobs: int = Field(default=1000, ge=1)
    label: Label | None = None
    #: Serve only these of the engine's models (default: all of them).
    models: list[str] | None = None
    #: Refuse requesters whose available credit in our ledger is <= 0 (off: friends-only grid).
    check_credit: bool = True
    #: Refuse requests without a valid [ext] request signature (401).
    require_signed_requests: bool = False
    #: Largest request body; openclaw's bodies run to ~60 KB, images make them bigger.
    max_body_bytes: int = Field(default=8 * 1024 * 1024, ge=1024)
    #: Done jobs are kept this long, failed ones half as long.
    job_ttl_seconds: int = Field(default=3600, ge=1)


class RouterSettings(BaseModel):
    """How a router runs; the CLI, ``serve`` and the TUI all build this."""

    host: str = DEFAULT_HOST
    port: int = Field(default=ROUTER_PORT, ge=0, le=65535)
    #: When set, OpenAI clients must send ``Authorization: Bearer <api_key>``.
    api_key: ApiKey | None = None
    #: Seconds between background capacity refreshes of each peer.
    capacity_interval: float = Field(default=15.0, gt=0)
    #: Seconds a capacity probe may take.
    probe_timeout: float = Field(default=2.0, gt=0)
    #: Timeouts by phase of a call to a peer, in seconds (see lobstah_core/timeouts.py):
    #: connecting; the status line (a stream's once the engine accepted, a plain answer's once
    #: it is ready); silence between pieces of the body; the whole call (None: no limit).
    connect_timeout: float = Field(default=5.0, gt=0, le=3600)
    first_byte_timeout: float = Field(default=120.0, gt=0, le=86400)
    idle_timeout: float = Field(default=60.0, gt=0, le=86400)
    total_timeout: float | None = Field(default=None, gt=0, le=86400)
    #: Browser origins allowed besides loopback pages (``*``: any); also $LOBSTAH_ORIGINS.
    cors_origins: list[str] = []
    max_body_bytes: int = Field(default=8 * 1024 * 1024, ge=1024)
    #: How long a peer that failed twice in a row is left out (WIRE.md: 30 s).
    exclusion_seconds: float = Field(default=30.0, gt=0)
    #: Seconds between two reconciliation passes over the workers used (WIRE.md "[ext]
    #: reconciliation": at start and every few minutes).
    reconcile_interval: float = Field(default=180.0, gt=0)

    def timeouts(self) -> Timeouts:
        """The phase timeouts of calls to peers."""
        return Timeouts(self.connect_timeout, self.first_byte_timeout, self.idle_timeout, self.total_timeout)

    def all_cors_origins(self, environ: Mapping[str, str] | None = None) -> list[str]:
        """``cors_origins`` plus the comma-separated ``$LOBSTAH_ORIGINS``."""
        env = os.environ if environ is None else environ
        extra = [o.strip() for o in env.get("LOBSTAH_ORIGINS", "").split(",") if o.strip()]
        return [*self.cors_origins, *extra]


class AdvertiseSettings(BaseModel):
    """Where and how a worker advertises itself (opt-in): a tracker, Nostr relays, or both."""

    tracker_url: str | None = None
    #: Nostr relays to publish on (empty: not on Nostr).
    nostr_relays: list[str] = []
    #: The URL peers should use to reach this worker (its public address).
    announce_url: str
    label: Label | None = None
    ttl_seconds: int = Field(default=300, ge=30)
