"""Batches: each batch of this node's router — status, progress, who served it, time left.

Hidden while the router has no batch, so a node that never runs one keeps its layout. Fed by
the ``batch.status`` and ``batch.progress`` events (running totals, so a missed event costs
nothing) and, at start, by the batches the router already holds.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field

from rich.console import Group, RenderableType
from rich.progress_bar import ProgressBar
from rich.table import Table
from rich.text import Text
from textual.widgets import Static

from lobstah_core.events import BatchProgressed, BatchStatusChanged, Event
from lobstah_core.node_view import BatchView, busiest_peers

#: Statuses after which nothing changes any more.
FINAL = frozenset({"completed", "failed", "expired", "cancelled"})
#: Finished batches kept on screen (the newest); batches still running are all shown.
FINISHED_SHOWN = 3
#: Progress samples the rate is measured over (the latest ones: the rate follows the grid).
RATE_SAMPLES = 64
#: Peers named on a batch's row (the busiest); the others are counted in one "+N".
PEERS_SHOWN = 6

_STATUS_STYLE = {
    "in_progress": "cyan", "validating": "cyan", "finalizing": "cyan", "cancelling": "yellow",
    "completed": "green", "failed": "red", "expired": "red", "cancelled": "yellow",
}


@dataclass
class BatchRow:
    """What the panel knows of one batch."""

    batch_id: str
    status: str
    completed: int = 0
    failed: int = 0
    total: int = 0
    reason: str | None = None
    items_per_peer: dict[str, int] = field(default_factory=dict)
    #: ``(at, completed + failed)`` of the latest progress events, ``at`` in ms since the epoch.
    samples: deque[tuple[int, int]] = field(default_factory=lambda: deque(maxlen=RATE_SAMPLES))

    @property
    def done(self) -> int:
        """Requests with an outcome (answered or failed)."""
        return self.completed + self.failed

    def eta_s(self) -> float | None:
        """Seconds until every request has its outcome at the rate of the latest outcomes;
        ``None`` until two of them, some time apart, give a rate (or when it has ended)."""
        if self.status in FINAL or len(self.samples) < 2:
            return None
        (first_at, first_done), (last_at, last_done) = self.samples[0], self.samples[-1]
        if last_at <= first_at or last_done <= first_done:
            return None
        per_s = (last_done - first_done) / ((last_at - first_at) / 1000)
        return max(0, self.total - self.done) / per_s


class BatchesPanel(Static):
    """One block per batch: id, status and time left; a progress bar with the counts; the
    peers that served it, busiest first. A finished batch keeps two lines: its counts and its
    peers."""

    def __init__(self, labels: dict[str, str], **kwargs: object) -> None:
        """
        Args:
            labels: peer labels by pubkey, filled in by the app as snapshots name the peers
                (the same dict, read at each repaint).
        """
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.labels = labels
        self.rows: dict[str, BatchRow] = {}
        self._labels_painted = 0

    def on_mount(self) -> None:
        self.border_title = "Batches"
        self.display = False
        # Batches loaded at start may come before the first snapshot names their peers.
        self.set_interval(1.0, self._relabel)

    def _relabel(self) -> None:
        if self.rows and len(self.labels) != self._labels_painted:
            self._paint()

    def load(self, batches: Iterable[BatchView]) -> None:
        """Show the batches the router already held (the dashboard started after them).

        Events may have come first: what they said is newer, so a known batch only takes
        counts that are ahead of its own.
        """
        for view in batches:
            row = self.rows.get(view.batch_id)
            if row is None:
                self.rows[view.batch_id] = BatchRow(
                    view.batch_id, view.status, view.completed, view.failed, view.total, view.reason,
                    dict(view.items_per_peer),
                )
            elif view.completed + view.failed > row.done:
                row.completed, row.failed = view.completed, view.failed
                for peer, count in view.items_per_peer.items():
                    row.items_per_peer[peer] = max(count, row.items_per_peer.get(peer, 0))
        self._paint()

    def take(self, events: Iterable[Event]) -> None:
        """Apply the batch events among ``events`` (others are skipped), then repaint once."""
        changed = False
        for event in events:
            if isinstance(event, BatchProgressed):
                row = self._row(event.batch_id, "in_progress")
                row.completed, row.failed, row.total = event.completed, event.failed, event.total
                if event.peer is not None and event.peer_completed:
                    row.items_per_peer[event.peer] = event.peer_completed
                row.samples.append((event.at, row.done))
                changed = True
            elif isinstance(event, BatchStatusChanged):
                row = self._row(event.batch_id, event.status)
                row.status, row.reason = event.status, event.reason
                row.completed, row.failed, row.total = event.completed, event.failed, event.total
                changed = True
        if changed:
            self._paint()

    def _row(self, batch_id: str, status: str) -> BatchRow:
        row = self.rows.get(batch_id)
        if row is None:
            row = self.rows[batch_id] = BatchRow(batch_id, status)
        return row

    def _paint(self) -> None:
        running = [row for row in self.rows.values() if row.status not in FINAL]
        finished = [row for row in self.rows.values() if row.status in FINAL]
        # Rows are kept in the order they were first seen; the oldest finished ones leave.
        for row in finished[:-FINISHED_SHOWN]:
            del self.rows[row.batch_id]
        shown = running + finished[-FINISHED_SHOWN:]
        self.display = bool(shown)
        self._labels_painted = len(self.labels)
        self.update(Group(*(describe_batch(row, self.labels) for row in shown)))


def describe_batch(row: BatchRow, labels: dict[str, str]) -> RenderableType:
    """The lines of one batch: id, status and ETA; the bar and counts; the peers (and why it
    waits, when it does). A finished batch: id, status and counts; the peers. Narrow enough
    for the 42 columns an 80-column terminal leaves: the id gives way first."""
    counts = Text(f"{row.completed}/{row.total}")
    if row.failed:
        counts.append(f" ✗{row.failed}", "red")
    status = Text(row.status, _STATUS_STYLE.get(row.status, ""))
    peers = Text(describe_peers(row.items_per_peer, labels), style="dim", no_wrap=True, overflow="ellipsis")
    if row.status in FINAL:
        return Group(_beside(Text(row.batch_id, "bold"), status, counts), peers)
    eta = row.eta_s()
    lines: list[RenderableType] = [
        _beside(Text(row.batch_id, "bold"), status, f"ETA {'—' if eta is None else format_duration(eta)}"),
        _beside(ProgressBar(total=max(row.total, 1), completed=row.done), counts),
        peers,
    ]
    if row.reason:
        lines.append(Text(row.reason, style="yellow", no_wrap=True, overflow="ellipsis"))
    return Group(*lines)


def _beside(first: RenderableType, *rest: RenderableType) -> Table:
    """One line: ``first`` takes the width that the ``rest`` (kept whole, at the right) leave."""
    grid = Table.grid(expand=True, padding=(0, 1))
    grid.add_column(ratio=1, no_wrap=True, overflow="ellipsis")
    for _ in rest:
        grid.add_column(no_wrap=True, justify="right")
    grid.add_row(first, *rest)
    return grid


def describe_peers(items_per_peer: dict[str, int], labels: dict[str, str]) -> str:
    """``"swift 120 · steady 64 · +3 more"``: the busiest peers first, by label when known."""
    if not items_per_peer:
        return "no request answered yet"
    named = busiest_peers(items_per_peer, labels, PEERS_SHOWN)
    if len(items_per_peer) > PEERS_SHOWN:
        named.append(f"+{len(items_per_peer) - PEERS_SHOWN} more")
    return " · ".join(named)


def format_duration(seconds: float) -> str:
    """``"45s"``, ``"2m10s"``, ``"1h05m"``."""
    whole = round(seconds)
    if whole < 60:
        return f"{whole}s"
    if whole < 3600:
        return f"{whole // 60}m{whole % 60:02d}s"
    return f"{whole // 3600}h{whole % 3600 // 60:02d}m"
