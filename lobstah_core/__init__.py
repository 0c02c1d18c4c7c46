"""lobstah_core: the headless Lobstah grid node (protocol, ledger, servers, discovery, CLI).

This package never imports the TUI (textual, rich); ``lobstah_tui`` depends on it, not the
reverse.
"""

__version__ = "0.1.0"
