"""The peer list: ``peers.json``, a JSON array of ``{pubkey, url, label?}`` as the JS nodes write it.

We add two optional fields JS nodes ignore: ``source`` (manual, tracker, nostr) and, for
discovered peers, ``expiresAt`` (when their announcement runs out; they drop out then, manual
peers never do). Writes are atomic (temporary file + rename), so a crash never leaves half a list.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Literal

from pydantic import TypeAdapter, ValidationError

from ..errors import LobstahError
from ..protocol.url_safety import peer_url_host
from ..protocol.wire import Pubkey, WireModel, describe_validation_error

__all__ = ["Peer", "PeerSource", "PeerStore", "PeerListError"]

#: How a peer became known; ``self`` is the node's own worker (never in peers.json).
PeerSource = Literal["manual", "tracker", "nostr", "self"]


class PeerListError(LobstahError):
    """peers.json cannot be read or holds something that is not a peer list."""

    type = "peer_list_error"


class Peer(WireModel):
    """One peer a router may call."""

    pubkey: Pubkey
    url: str
    label: str | None = None
    #: [ext] how we learned of this peer.
    source: PeerSource = "manual"
    #: [ext] for discovered peers: ms since the epoch when their announcement expires.
    expires_at: int | None = None

    @property
    def name(self) -> str:
        """The label, or the first 12 characters of the pubkey."""
        return self.label or self.pubkey[:12]

    def expired(self, now_ms: int) -> bool:
        return self.expires_at is not None and now_ms > self.expires_at


_PEER_LIST = TypeAdapter(list[Peer])


class PeerStore:
    """``peers.json`` on disk."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def mtime(self) -> float | None:
        """When the file last changed; None if it cannot be looked at (missing, or a file in
        the way of its directory: :meth:`load` then says which)."""
        try:
            return self.path.stat().st_mtime
        except OSError:
            return None

    def load(self) -> list[Peer]:
        """Every peer in the file (none if there is no file): what a rewrite starts from, so a
        single bad entry refuses it (rewriting would lose that entry).

        Raises:
            PeerListError: the file is not a valid peer list (it is left untouched).
        """
        text = self._text()
        if text is None:
            return []
        try:
            return _PEER_LIST.validate_json(text)
        except ValidationError as exc:
            raise PeerListError(f"{self.path} is not a valid peer list: {describe_validation_error(exc)}") from None

    def load_usable(self) -> tuple[list[Peer], list[str]]:
        """The peers a router may use: every valid entry, and one problem for each entry that is
        not a peer (a hand-edited typo costs only its own entry).

        Raises:
            PeerListError: the file cannot be read, or is not a JSON array.
        """
        text = self._text()
        if text is None:
            return [], []
        try:
            entries = json.loads(text)
        except ValueError as exc:
            raise PeerListError(f"{self.path} is not a valid peer list: not JSON ({exc})") from None
        if not isinstance(entries, list):
            raise PeerListError(f"{self.path} is not a valid peer list: not a JSON array")
        peers, problems = [], []
        for number, entry in enumerate(entries, start=1):
            try:
                peers.append(Peer.model_validate(entry))
            except ValidationError as exc:
                problems.append(f"{self.path} entry {number} is not a peer: {describe_validation_error(exc)}")
        return peers, problems

    def _text(self) -> str | None:
        try:
            return self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise PeerListError(f"cannot read {self.path}: {exc.strerror or exc}") from None
        except UnicodeDecodeError as exc:
            raise PeerListError(f"{self.path} is not a valid peer list: not UTF-8 (byte {exc.start})") from None

    def active(self, now_ms: int) -> list[Peer]:
        """The peers to use now: manual ones, and discovered ones not yet expired."""
        return [peer for peer in self.load() if not peer.expired(now_ms)]

    def save(self, peers: list[Peer]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        body = [peer.model_dump(mode="json", by_alias=True, exclude_none=True) for peer in peers]
        for entry in body:
            if entry.get("source") == "manual":
                del entry["source"]  # the JS format, exactly, for peers added by hand
        temporary = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        temporary.write_text(json.dumps(body, indent=2) + "\n", encoding="utf-8")
        os.replace(temporary, self.path)

    def add(self, peer: Peer) -> bool:
        """Add ``peer``, replacing any entry with its pubkey; ``True`` if it was new.

        Raises:
            UnsafeUrl: the URL is not plain http(s) with a host.
        """
        peer_url_host(peer.url)
        peers = self.load()
        new = all(p.pubkey != peer.pubkey for p in peers)
        self.save([p for p in peers if p.pubkey != peer.pubkey] + [peer])
        return new

    def remove(self, pubkey: str) -> bool:
        """Remove the peer with ``pubkey``; ``False`` if there was none."""
        peers = self.load()
        kept = [p for p in peers if p.pubkey != pubkey]
        if len(kept) == len(peers):
            return False
        self.save(kept)
        return True
