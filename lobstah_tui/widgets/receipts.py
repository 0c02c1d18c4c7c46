"""Receipts: a live log of credits earned and spent; rejected receipts stand out, and so do
receipts recovered by reconciliation (how many, from whom)."""

from __future__ import annotations

import time
from collections.abc import Iterable

from rich.style import Style
from rich.text import Text
from textual.geometry import Region
from textual.strip import Strip
from textual.widgets import RichLog

from lobstah_core.events import Event, ReceiptAccepted, ReceiptIssued, ReceiptRejected, ReceiptsRecovered

_NEWLINE = Text("\n")


class ReceiptsPanel(RichLog):
    """The newest receipts at the bottom, one line each (credits earned, spent, refused).

    Lines never scroll sideways (the stylesheet hides that overflow): a horizontal scrollbar
    appearing after the log scrolled to its end would hide the newest line.
    """

    #: The widget's style while it renders a frame (``None`` between frames).
    _style_of_render: Style | None = None

    def on_mount(self) -> None:
        self.border_title = "Receipts"

    @property
    def rich_style(self) -> Style:
        """Textual's ``rich_style``, worked out once per frame rather than once per line.

        Every scroll of the log renders all its visible lines again, and Textual's RichLog asks
        for its style on each of them, which walks the widget's ancestors' styles every time:
        half of the panel's painting in bench/tui.py. Styles do not change within a frame.
        """
        if self._style_of_render is not None:
            return self._style_of_render
        return super().rich_style

    def render_lines(self, crop: Region) -> list[Strip]:
        self._style_of_render = super().rich_style
        try:
            return super().render_lines(crop)
        finally:
            self._style_of_render = None

    def add(self, events: Iterable[Event], labels: dict[str, str]) -> None:
        """Append the lines of the receipt events among ``events``, oldest first.

        They are written as one block: each ``write`` renders, trims the log to ``max_lines``
        and scrolls, so one per event cost more than the rest of the dashboard at 200 receipts/s.
        The log follows its end as RichLog's ``auto_scroll`` does, except when it is full and
        already at its end: a block then leaves the end where it was, and RichLog's scroll to it
        (messages through the widget's and the screen's queues after the next frame) would move
        nothing; in bench/tui.py they were two thirds of the message handling.
        """
        lines = [line for line in (describe_receipt(event, labels) for event in events) if line is not None]
        if not lines:
            return
        size, at_end = self.virtual_size, self.is_vertical_scroll_end
        self.write(_NEWLINE.join(lines), scroll_end=False)
        if self.auto_scroll and not (at_end and self.virtual_size == size):
            self.scroll_end(animate=False, immediate=False, x_axis=False)


def describe_receipt(event: Event, labels: dict[str, str]) -> Text | None:
    """One styled line, or None for an event that is not about a receipt.

    Tokens (input+output) come before the model so that they survive a narrow panel (80
    columns leave it ~42): what the line is worth matters more than the model's full name.
    Names and messages are plain text, never markup: a model called ``[x]`` shows as itself.
    """
    clock = time.strftime("%H:%M:%S", time.localtime(event.at / 1000))
    if isinstance(event, ReceiptAccepted | ReceiptIssued):
        if isinstance(event, ReceiptAccepted):
            who, what = labels.get(event.peer, event.peer[4:16]), ("→ spent ", "yellow")
        else:
            who, what = labels.get(event.requester, event.requester[4:16]), ("← earned", "green")
        tokens = f"{event.input_tokens:>4}+{event.output_tokens:<4}"
        return Text.assemble(f"{clock} ", what, f" {who:<8.8} {tokens} {event.model}")
    if isinstance(event, ReceiptRejected):
        who = labels.get(event.peer, event.peer[4:16])
        return Text.assemble(f"{clock} ", ("✗ rejected", "bold red"), f" {who:<8.8} {event.reason}: {event.message}")
    if isinstance(event, ReceiptsRecovered):
        who = labels.get(event.peer, event.peer[4:16])
        return Text.assemble(f"{clock} ", ("↺ recovered", "cyan"), f" {who:<8.8} {event.count} receipt(s) by reconciliation")
    return None
