"""``lobstah-core``: the command line of a Lobstah node.

Every command reads its paths from :class:`~lobstah_core.config.Settings` (so ``LOBSTAH_HOME``
is honoured everywhere), prints data as JSON with ``--json``, and reports failures as one
readable line on stderr with a non-zero exit code, never a traceback.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from ..config import Settings
from ..errors import LobstahError
from . import batch, identity, ledger, openclaw, peers, router, serve, tracker, worker

__all__ = ["main", "build_parser"]


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``lobstah-core`` with ``argv``; returns the process exit code."""
    args = build_parser().parse_args(argv)
    try:
        return int(args.command(args, Settings.from_env()))
    except LobstahError as exc:
        print(f"lobstah-core: error: {exc.message}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # `lobstah-core ledger export | head`: the reader left; nothing went wrong.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of every ``lobstah-core`` command."""
    parser = argparse.ArgumentParser(
        prog="lobstah-core",
        description="A node of the Lobstah peer-to-peer LLM inference grid.",
    )
    commands = parser.add_subparsers(metavar="COMMAND", required=True)
    for group in (identity, serve, worker, router, tracker, peers, ledger, openclaw, batch):
        group.register(commands)
    return parser
