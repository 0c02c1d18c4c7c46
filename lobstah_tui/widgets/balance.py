"""Balance: earned, spent, net, available, and cumulative earned vs spent over time."""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.widgets import Static
from textual_plotext import PlotextPlot

from lobstah_core.events import Event, ReceiptAccepted, ReceiptIssued
from lobstah_core.node import NodeSnapshot

#: Points kept for the plot (older ones scroll off).
HISTORY = 300


class BalancePanel(Vertical):
    def __init__(self, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.earned: list[int] = []
        self.spent: list[int] = []

    def compose(self) -> ComposeResult:
        yield Static("no balance yet", id="balance-figures")
        yield PlotextPlot(id="balance-plot")

    def on_mount(self) -> None:
        self.border_title = "Balance"

    def show(self, snapshot: NodeSnapshot) -> None:
        if snapshot.balance is None:
            return
        mine = snapshot.balance.self
        if not self.earned:  # start the curves from what the ledger already holds
            self.earned, self.spent = [mine.earned], [mine.spent]
        # Redrawn once a snapshot (1 Hz), not per receipt: at 200 receipts/s that is the cost.
        self._plot()
        self.query_one("#balance-figures", Static).update(Text.assemble(
            "earned ", (f"{mine.earned:,}", "green"), "   spent ", (f"{mine.spent:,}", "yellow"),
            "\nnet ", f"{mine.net:+,}", "   available ", (f"{mine.available:,}", "bold"),
        ))

    def add(self, event: Event) -> None:
        if not isinstance(event, ReceiptAccepted | ReceiptIssued) or not self.earned:
            return
        credit = event.input_tokens + event.output_tokens
        earned, spent = self.earned[-1], self.spent[-1]
        if isinstance(event, ReceiptIssued):
            earned += credit
        if isinstance(event, ReceiptAccepted):
            spent += credit
        self.earned = (self.earned + [earned])[-HISTORY:]
        self.spent = (self.spent + [spent])[-HISTORY:]

    def _plot(self) -> None:
        plot = self.query_one("#balance-plot", PlotextPlot)
        plt = plot.plt
        plt.clear_data()
        plt.plot(self.earned, label="earned")
        plt.plot(self.spent, label="spent")
        plt.title("cumulative credits")
        plot.refresh()
