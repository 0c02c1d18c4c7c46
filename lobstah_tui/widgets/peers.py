"""Peers: who the router can call, their state (excluded ones count down), load and latency."""

from __future__ import annotations

from typing import Self

from rich.cells import cell_len
from rich.text import Text
from textual.geometry import Region
from textual.widgets import DataTable
from textual.widgets.data_table import ColumnKey

from lobstah_core.node_view import NodeSnapshot, PeerView

# State first: it is what an operator scans for; the long URL comes last.
COLUMNS = ("peer", "state", "fails", "queue", "in flight", "latency", "tier", "models", "pubkey", "url")
_STATE = COLUMNS.index("state")


class PeersPanel(DataTable):
    """A table with one row per peer, refreshed from each snapshot."""

    def __init__(self, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        #: The text of each row as last shown, by pubkey: what the next snapshot is compared to.
        self._shown: dict[str, tuple[str, ...]] = {}
        self._column_keys: list[ColumnKey] = []
        #: True while ``show`` updates cells: their refreshes wait for one at its end.
        self._updating = False

    def on_mount(self) -> None:
        self.border_title = "Peers"
        self.cursor_type = "row"
        self._column_keys = self.add_columns(*COLUMNS)

    def show(self, snapshot: NodeSnapshot, now_ms: int) -> None:
        """Show the peers of ``snapshot``, their exclusions counted down to ``now_ms``."""
        rows = {peer.pubkey: row(peer, now_ms) for peer in snapshot.peers}
        if rows.keys() != self._shown.keys():
            self.clear()
            for pubkey, texts in rows.items():
                self.add_row(*(cell(column, text) for column, text in enumerate(texts)), key=pubkey)
        else:
            self._update(rows)
        self._shown = rows
        self.border_subtitle = f"{len(snapshot.peers)} peers"

    def _update(self, rows: dict[str, tuple[str, ...]]) -> None:
        # Same peers: touch only the cells that changed (countdowns, load, latency), found by
        # comparing plain strings. A column is re-measured only when a value outgrows it:
        # re-measuring on every change walks every row (minutes at 1,000 peers). Each
        # update_cell refreshes the whole table: 1,000 countdowns made that 65% of this update
        # (bench/tui.py); one refresh at the end marks the same.
        changed = [(pubkey, texts) for pubkey, texts in rows.items() if texts != self._shown[pubkey]]
        if not changed:
            return
        self._updating = True
        try:
            for pubkey, texts in changed:
                for column, (old, new) in enumerate(zip(self._shown[pubkey], texts, strict=True)):
                    if old != new:
                        key = self._column_keys[column]
                        grows = cell_len(new) > self.columns[key].content_width
                        self.update_cell(pubkey, key, cell(column, new), update_width=grows)
        finally:
            self._updating = False
        self.refresh()

    def refresh(self, *regions: Region, repaint: bool = True, layout: bool = False, recompose: bool = False) -> Self:
        """Textual's refresh, except while ``show`` updates cells (it refreshes once after)."""
        if self._updating:
            return self
        return super().refresh(*regions, repaint=repaint, layout=layout, recompose=recompose)


def cell(column: int, text: str) -> Text:
    """What a cell shows: ``text`` as it is (a label is never read as markup), the state coloured."""
    if column == _STATE:
        return Text(text, style="red" if text.startswith("excluded") else "green", end="")
    return Text(text, end="")


def row(peer: PeerView, now_ms: int) -> tuple[str, ...]:
    """The plain text of the cells of ``peer``'s row, in the order of ``COLUMNS``."""
    if peer.state == "excluded":
        seconds = max(0, (peer.excluded_until - now_ms + 999) // 1000)
        state = f"excluded {seconds}s"
    else:
        state = "healthy"
    latency = f"{peer.ttfb_ms:.0f} ms" if peer.ttfb_ms is not None else "-"
    return (
        peer.label or "-",
        state,
        str(peer.consecutive_failures),
        "-" if peer.queue_depth is None else str(peer.queue_depth),
        str(peer.in_flight),
        latency,
        peer.tier or "-",
        ", ".join(peer.models) or "-",
        peer.pubkey[4:16],
        peer.url,
    )
