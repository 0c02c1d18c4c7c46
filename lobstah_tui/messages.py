"""Textual messages the app reacts to, adapted from the core."""

from __future__ import annotations

from dataclasses import dataclass

from textual.message import Message

from lobstah_core.node_view import NodeSnapshot


@dataclass
class SnapshotReady(Message):
    """A fresh snapshot of the node. Only the newest one matters, so they coalesce."""

    snapshot: NodeSnapshot

    def can_replace(self, message: Message) -> bool:
        return isinstance(message, SnapshotReady)
