"""Peers: who the router can call, their state (excluded ones count down), load and latency."""

from __future__ import annotations

from rich.text import Text
from textual.widgets import DataTable

from lobstah_core.node_view import NodeSnapshot, PeerView

# State first: it is what an operator scans for; the long URL comes last.
COLUMNS = ("peer", "state", "fails", "queue", "in flight", "latency", "tier", "models", "pubkey", "url")


class PeersPanel(DataTable):
    """A table with one row per peer, refreshed from each snapshot."""

    def on_mount(self) -> None:
        self.border_title = "Peers"
        self.cursor_type = "row"
        self.add_columns(*COLUMNS)

    def show(self, snapshot: NodeSnapshot, now_ms: int) -> None:
        rows = {peer.pubkey: row(peer, now_ms) for peer in snapshot.peers}
        if set(rows) != {key.value for key in self.rows}:
            self.clear()
            for pubkey, cells in rows.items():
                self.add_row(*cells, key=pubkey)
        else:
            # Same peers: touch only the cells that changed (countdowns, load, latency). A column
            # is re-measured only when a value outgrows it: re-measuring on every change walks
            # every row, which at 1,000 peers kept the app busy for minutes.
            columns = self.ordered_columns
            for pubkey, cells in rows.items():
                for column, (old, new) in enumerate(zip(self.get_row(pubkey), cells, strict=True)):
                    if old != new:
                        grows = Text.from_markup(new).cell_len > columns[column].content_width
                        self.update_cell_at((self.get_row_index(pubkey), column), new, update_width=grows)
        self.border_subtitle = f"{len(snapshot.peers)} peers"


def row(peer: PeerView, now_ms: int) -> tuple[str, ...]:
    if peer.state == "excluded":
        seconds = max(0, (peer.excluded_until - now_ms + 999) // 1000)
        state = f"[red]excluded {seconds}s[/]"
    else:
        state = "[green]healthy[/]"
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
