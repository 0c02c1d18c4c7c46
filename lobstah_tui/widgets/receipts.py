"""Receipts: a live log of credits earned and spent; rejected receipts stand out, and so do
receipts recovered by reconciliation (how many, from whom)."""

from __future__ import annotations

import time

from textual.widgets import RichLog

from lobstah_core.events import Event, ReceiptAccepted, ReceiptIssued, ReceiptRejected, ReceiptsRecovered


class ReceiptsPanel(RichLog):
    """The newest receipts at the bottom, one line each (credits earned, spent, refused).

    Lines never scroll sideways (the stylesheet hides that overflow): a horizontal scrollbar
    appearing after the log scrolled to its end would hide the newest line.
    """

    def on_mount(self) -> None:
        self.border_title = "Receipts"

    def add(self, event: Event, labels: dict[str, str]) -> None:
        """Append the line of a receipt event; other events are ignored."""
        line = describe_receipt(event, labels)
        if line is not None:
            self.write(line)


def describe_receipt(event: Event, labels: dict[str, str]) -> str | None:
    """One console-markup line, or None for an event that is not about a receipt.

    Tokens (input+output) come before the model so that they survive a narrow panel (80
    columns leave it ~42): what the line is worth matters more than the model's full name.
    """
    clock = time.strftime("%H:%M:%S", time.localtime(event.at / 1000))
    if isinstance(event, ReceiptAccepted | ReceiptIssued):
        if isinstance(event, ReceiptAccepted):
            who, what = labels.get(event.peer, event.peer[4:16]), "[yellow]→ spent [/]"
        else:
            who, what = labels.get(event.requester, event.requester[4:16]), "[green]← earned[/]"
        tokens = f"{event.input_tokens:>4}+{event.output_tokens:<4}"
        return f"{clock} {what} {who:<8.8} {tokens} {event.model}"
    if isinstance(event, ReceiptRejected):
        who = labels.get(event.peer, event.peer[4:16])
        return f"{clock} [bold red]✗ rejected[/] {who:<8.8} {event.reason}: {event.message}"
    if isinstance(event, ReceiptsRecovered):
        who = labels.get(event.peer, event.peer[4:16])
        return f"{clock} [cyan]↺ recovered[/] {who:<8.8} {event.count} receipt(s) by reconciliation"
    return None
