"""Receipts: a live log of credits earned and spent; rejected receipts stand out, and so do
receipts recovered by reconciliation (how many, from whom)."""

from __future__ import annotations

import time

from textual.widgets import RichLog

from lobstah_core.events import Event, ReceiptAccepted, ReceiptIssued, ReceiptRejected, ReceiptsRecovered


class ReceiptsPanel(RichLog):
    def on_mount(self) -> None:
        self.border_title = "Receipts"

    def add(self, event: Event, labels: dict[str, str]) -> None:
        line = describe_receipt(event, labels)
        if line is not None:
            self.write(line)


def describe_receipt(event: Event, labels: dict[str, str]) -> str | None:
    clock = time.strftime("%H:%M:%S", time.localtime(event.at / 1000))
    if isinstance(event, ReceiptAccepted):
        who = labels.get(event.peer, event.peer[4:16])
        return f"{clock} [yellow]→ spent  [/]{who:<10} {event.model:<11} {event.input_tokens:>4} in {event.output_tokens:>4} out"
    if isinstance(event, ReceiptIssued):
        who = labels.get(event.requester, event.requester[4:16])
        return f"{clock} [green]← earned [/]{who:<10} {event.model:<11} {event.input_tokens:>4} in {event.output_tokens:>4} out"
    if isinstance(event, ReceiptRejected):
        who = labels.get(event.peer, event.peer[4:16])
        return f"{clock} [bold red]✗ rejected [/]{who:<10} {event.reason}: {event.message}"
    if isinstance(event, ReceiptsRecovered):
        who = labels.get(event.peer, event.peer[4:16])
        return f"{clock} [cyan]↺ recovered [/]{who:<10} {event.count} receipt(s) by reconciliation"
    return None
