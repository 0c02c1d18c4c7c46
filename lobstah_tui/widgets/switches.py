"""The advertise and sync switches (both off by default), each with its last result."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.widgets import Label, Static, Switch

from lobstah_core.node_view import NodeSnapshot


class SwitchesPanel(Vertical):
    def compose(self) -> ComposeResult:
        with Horizontal(classes="switch-row"):
            yield Switch(value=False, id="advertise")
            yield Label("Advertise [dim](a)[/]")
        yield Static("off", id="advertise-result", classes="switch-result")
        with Horizontal(classes="switch-row"):
            yield Switch(value=False, id="sync")
            yield Label("Sync [dim](s)[/]")
        yield Static("off", id="sync-result", classes="switch-result")

    def on_mount(self) -> None:
        self.border_title = "Switches"

    def show(self, snapshot: NodeSnapshot) -> None:
        for name, (on, result) in (("advertise", snapshot.advertise), ("sync", snapshot.sync)):
            switch = self.query_one(f"#{name}", Switch)
            with switch.prevent(Switch.Changed):
                switch.value = on
            line = self.query_one(f"#{name}-result", Static)
            if line.content != result:  # each update lays the whole screen out again
                line.update(result)
