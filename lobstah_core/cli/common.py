"""What every command shares: its error type, argument helpers, JSON output."""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from typing import Any

from pydantic import ValidationError

from ..config import Settings
from ..errors import LobstahError
from ..protocol.wire import describe_validation_error

__all__ = ["CliError", "Command", "add_command", "add_json_flag", "print_json", "first_line"]

Command = Callable[[argparse.Namespace, Settings], int]


class CliError(LobstahError):
    """A command that cannot do what was asked (bad file, bad arguments)."""

    type = "cli_error"


def add_command(commands: Any, name: str, handler: Command, help_text: str) -> argparse.ArgumentParser:
    parser: argparse.ArgumentParser = commands.add_parser(name, help=help_text, description=help_text)
    parser.set_defaults(command=handler)
    return parser


def add_json_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print the result as JSON")


def print_json(value: Any) -> None:
    print(json.dumps(value, indent=2))


def first_line(exc: Exception) -> str:
    """One readable line for a settings or value error."""
    if isinstance(exc, ValidationError):
        return describe_validation_error(exc)
    return str(exc).splitlines()[0]
