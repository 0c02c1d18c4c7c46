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

from pydantic import ValidationError

from ..config import Settings
from ..errors import LobstahError, describe_os_error
from . import batch, identity, ledger, openclaw, peers, router, serve, tracker, worker
from .common import OneLineParser, first_line

__all__ = ["main", "build_parser"]


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``lobstah-core`` with ``argv``; returns the process exit code."""
    args = build_parser().parse_args(argv)
    try:
        return int(args.command(args, Settings.from_env()))
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # `lobstah-core ledger export | head`: the reader left; nothing went wrong.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    # Every command fails through here, so each kind of failure reads as one line whatever
    # command met it: our own errors, the file system (a home that is a file or read-only,
    # a port taken), and settings refused by their pydantic model.
    except LobstahError as exc:
        return _fail(exc.message)
    except OSError as exc:
        return _fail(describe_os_error(exc))
    except ValidationError as exc:
        return _fail(first_line(exc))


def _fail(line: str) -> int:
    print(f"lobstah-core: error: {line}", file=sys.stderr)
    return 1


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of every ``lobstah-core`` command."""
    parser = OneLineParser(
        prog="lobstah-core",
        description="A node of the Lobstah peer-to-peer LLM inference grid.",
    )
    commands = parser.add_subparsers(metavar="COMMAND", required=True)
    for group in (identity, serve, worker, router, tracker, peers, ledger, openclaw, batch):
        group.register(commands)
    return parser
