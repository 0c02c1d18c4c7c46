"""What every command shares: its error type, argument helpers, JSON output."""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from typing import Any, NoReturn

from pydantic import ValidationError

from ..config import Settings
from ..errors import LobstahError, UnsafeUrl
from ..protocol.url_safety import peer_url_host
from ..protocol.wire import describe_validation_error
from ..timeouts import Timeouts

__all__ = [
    "CliError", "Command", "add_command", "add_json_flag", "print_json", "first_line",
    "add_timeout_flags", "timeouts_from", "finite_non_negative", "finite_positive", "router_url", "OneLineParser",
]

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


def add_timeout_flags(parser: argparse.ArgumentParser, what: str) -> None:
    """``--connect-timeout``, ``--first-byte-timeout``, ``--idle-timeout``, ``--total-timeout``:
    the phase limits of calls to ``what`` (lobstah_core/timeouts.py), in seconds."""
    defaults = Timeouts()
    group = parser.add_argument_group(f"timeouts of calls to {what} (seconds)")
    group.add_argument("--connect-timeout", type=float, default=defaults.connect_s, metavar="S",
                       help="to connect (default %(default)s)")
    group.add_argument("--first-byte-timeout", type=float, default=defaults.first_byte_s, metavar="S",
                       help="to the status line: a stream's once accepted, a plain answer's once ready (default %(default)s)")
    group.add_argument("--idle-timeout", type=float, default=defaults.idle_s, metavar="S",
                       help="silence allowed between pieces of an answer (default %(default)s)")
    group.add_argument("--total-timeout", type=float, default=None, metavar="S",
                       help="a whole call (default: no limit; a long, steady stream is healthy)")


def timeouts_from(args: argparse.Namespace) -> Timeouts:
    """The :class:`Timeouts` of the flags :func:`add_timeout_flags` added.

    Raises:
        CliError: a limit that is not a positive number of seconds.
    """
    for flag in ("connect", "first_byte", "idle", "total"):
        value = getattr(args, f"{flag}_timeout")
        if value is not None and not value > 0:
            raise CliError(f"--{flag.replace('_', '-')}-timeout: must be a positive number of seconds, not {value}")
    return Timeouts(args.connect_timeout, args.first_byte_timeout, args.idle_timeout, args.total_timeout)


def finite_non_negative(text: str) -> float:
    """An argparse type: a finite number >= 0 (seconds, tokens per second).

    Raises:
        argparse.ArgumentTypeError: anything else, NaN and infinity included.
    """
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not (0 <= value < float("inf")):
        raise argparse.ArgumentTypeError(f"must be a finite number >= 0, not {text}")
    return value


def finite_positive(text: str) -> float:
    """An argparse type: a finite number > 0 (a duration that must pass).

    Raises:
        argparse.ArgumentTypeError: anything else, NaN, zero and infinity included.
    """
    value = finite_non_negative(text)
    if value == 0:
        raise argparse.ArgumentTypeError("must be more than 0")
    return value


def router_url(text: str) -> str:
    """An argparse type: a router's base URL, ``http(s)://host[:port]``, without a trailing
    slash; a trailing ``/v1`` (the OpenAI base URL users are given) is dropped, as commands add
    the API paths themselves.

    Raises:
        argparse.ArgumentTypeError: not plain http(s) with a host and a numeric port.
    """
    try:
        peer_url_host(text)
    except UnsafeUrl:
        raise argparse.ArgumentTypeError(
            f"not a router URL: {text[:200]!r} (e.g. http://127.0.0.1:17475)"
        ) from None
    return text.rstrip("/").removesuffix("/v1")


class OneLineParser(argparse.ArgumentParser):
    """An argument parser whose refusals are one line on stderr (exit status 2), as every
    other failure of the CLI is, instead of argparse's usage block; ``--help`` still shows it."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")
