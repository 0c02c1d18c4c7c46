"""A prompt box: send a test request through the grid and watch the tokens stream back."""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical, VerticalScroll
from textual.widgets import Input, Static


class PromptPanel(Vertical):
    """An input line and the answer below it, wrapped to the panel's width and scrollable.

    While the input has focus it takes every key (``a`` is a letter there, not Advertise);
    Escape gives the keys back to the dashboard.
    """

    BINDINGS = [Binding("escape", "leave", "Leave prompt")]

    def compose(self) -> ComposeResult:
        yield Input(placeholder="ask the grid something (Enter to send, Esc to leave)", id="prompt-input")
        with VerticalScroll(id="prompt-scroll"):
            yield Static("", id="prompt-output")

    def on_mount(self) -> None:
        self.border_title = "Try it"
        self.text = ""
        self.query_one("#prompt-scroll").display = False  # no empty row before the first answer

    def action_leave(self) -> None:
        """Unfocus the input, so the dashboard's keys and footer hints are back."""
        self.screen.set_focus(None)

    def start(self, prompt: str, model: str) -> None:
        """Clear the answer for a new ``prompt`` sent to ``model``."""
        self.text = ""
        scroll = self.query_one("#prompt-scroll", VerticalScroll)
        scroll.display = True
        scroll.anchor()  # follow the answer's end as it grows, until the operator scrolls up
        self.query_one("#prompt-output", Static).update(f"[dim]{model} ←[/] ")

    def append(self, piece: str) -> None:
        """Add a streamed piece of the answer; the view follows the end of the answer."""
        self.text += piece
        self.query_one("#prompt-output", Static).update(Text(self.text))

    def fail(self, message: str) -> None:
        """Show why the answer stopped, in place of the answer."""
        self.query_one("#prompt-output", Static).update(f"[red]{message}[/]")
