"""Balance: earned, spent, net, available, and cumulative earned vs spent over clock time."""

from __future__ import annotations

import time
from collections import deque

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.widgets import Static
from textual_plotext import PlotextPlot

from lobstah_core.events import Event, ReceiptAccepted, ReceiptIssued
from lobstah_core.node_view import NodeSnapshot

#: Points kept for the plot (older ones scroll off).
HISTORY = 300
#: Labels on the time axis: few enough to fit a 30-column plot.
TIME_TICKS = 3


class BalancePanel(Vertical):
    """The figures of this node's balance and its curves over time.

    The curves start from what the ledger held at the first snapshot and move with every
    receipt event, each point at the event's own time (``at``, ms since the epoch).
    """

    def __init__(self, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        #: ms since the epoch of each point; the first is None until an event dates it.
        self.times: deque[int | None] = deque(maxlen=HISTORY)
        self.earned: deque[int] = deque(maxlen=HISTORY)
        self.spent: deque[int] = deque(maxlen=HISTORY)
        #: Points added since the plot was last drawn.
        self._unplotted = 0

    def compose(self) -> ComposeResult:
        yield Static("no balance yet", id="balance-figures")
        yield PlotextPlot(id="balance-plot")

    def on_mount(self) -> None:
        self.border_title = "Balance"

    def show(self, snapshot: NodeSnapshot, now_ms: int) -> None:
        """Update the figures from ``snapshot`` and redraw the curves up to ``now_ms``."""
        if snapshot.balance is None:
            return
        mine = snapshot.balance.self
        if not self.earned:  # start the curves from what the ledger already holds
            self.times.append(None)
            self.earned.append(mine.earned)
            self.spent.append(mine.spent)
        # Redrawn at most once a snapshot (1 Hz), not per receipt: at 200 receipts/s that is the
        # cost. Unchanged curves are not redrawn, unless their one point is "now" (no receipt yet).
        # The redraw waits for the frame after this one, which paints the peers table: each takes
        # tens of ms to render, and receipts wait for a frame that does both.
        if self._unplotted or self.times[0] is None:
            self.call_after_refresh(self._plot, now_ms)
        # The figures' colours are the curves' legend (a legend inside the plot hides lines).
        figures = Text.assemble(
            "earned ", (f"{mine.earned:,}", "green"), "   spent ", (f"{mine.spent:,}", "yellow"),
            "\nnet ", f"{mine.net:+,}", "   available ", (f"{mine.available:,}", "bold"),
        )
        shown = self.query_one("#balance-figures", Static)
        if shown.content != figures:
            # Its height is fixed by the stylesheet: no need to lay the screen out again.
            shown.update(figures, layout=False)

    def add(self, event: Event) -> None:
        """Move the curves by the credit of a receipt event; other events are ignored."""
        if not isinstance(event, ReceiptAccepted | ReceiptIssued) or not self.earned:
            return
        credit = event.input_tokens + event.output_tokens
        earned, spent = self.earned[-1], self.spent[-1]
        if isinstance(event, ReceiptIssued):
            earned += credit
        if isinstance(event, ReceiptAccepted):
            spent += credit
        if self.times[0] is None:
            self.times[0] = event.at  # the ledger's total, just before the first receipt seen
        self.times.append(event.at)
        self.earned.append(earned)
        self.spent.append(spent)
        self._unplotted += 1

    def _plot(self, now_ms: int) -> None:
        plots = self.query("#balance-plot").results(PlotextPlot)
        plot = next(plots, None)
        if plot is None:
            return  # the app closed before the frame this redraw waited for
        plt = plot.plt
        plt.clear_data()
        plt.clear_figure()
        times = [now_ms if t is None else t for t in self.times]
        # Seconds from the first point: plotext wants numbers; the ticks carry the clock time.
        x = [(t - times[0]) / 1000 for t in times]
        # A column of the plot shows two points at most (its markers are two dots wide): more
        # only cost time to draw (300 points took plotext 14 ms to build at 34 columns, 60 took 6).
        kept = thinned(x, 2 * plot.size.width)
        earned, spent = list(self.earned), list(self.spent)
        plt.plot([x[i] for i in kept], [earned[i] for i in kept], color="green")
        plt.plot([x[i] for i in kept], [spent[i] for i in kept], color="yellow")
        span = x[-1] or 1.0
        ticks = [span * i / (TIME_TICKS - 1) for i in range(TIME_TICKS)]
        plt.xticks(ticks, [time.strftime("%H:%M:%S", time.localtime(times[0] / 1000 + tick)) for tick in ticks])
        plot.refresh()
        self._unplotted = 0


def thinned(x: list[float], most: int) -> list[int]:
    """Indices of the points to draw of a curve over ``x`` (ascending) on ``most`` dots across:
    the first point, then the last of each dot's span of ``x``, so every dot keeps the value
    the curve has there. Every index when there are no more points than dots (or no size yet).
    """
    if len(x) <= most or most < 2:
        return list(range(len(x)))
    span = (x[-1] - x[0]) or 1.0
    last_in_dot = {min(int((value - x[0]) / span * most), most - 1): i for i, value in enumerate(x)}
    return sorted({0, *last_in_dot.values()})
