"""A prompt box: send a test request through the grid and watch the tokens stream back."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.containers import Vertical
from textual.widgets import Input, Static


class PromptPanel(Vertical):
    def compose(self) -> ComposeResult:
        yield Input(placeholder="ask the grid something (Enter to send)", id="prompt-input")
        yield Static("", id="prompt-output")

    def on_mount(self) -> None:
        self.border_title = "Try it"

    def start(self, prompt: str, model: str) -> None:
        self.query_one("#prompt-output", Static).update(f"[dim]{model} ←[/] ")
        self.text = ""

    def append(self, piece: str) -> None:
        self.text += piece
        self.query_one("#prompt-output", Static).update(self.text)

    def fail(self, message: str) -> None:
        self.query_one("#prompt-output", Static).update(f"[red]{message}[/]")
