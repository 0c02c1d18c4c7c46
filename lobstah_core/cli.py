"""``lobstah-core``: the command line of a Lobstah node.

Every command reads its paths from :class:`~lobstah_core.config.Settings` (so ``LOBSTAH_HOME``
is honoured everywhere), prints data as JSON with ``--json``, and reports failures as one
readable line on stderr with a non-zero exit code, never a traceback.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TextIO

from .config import Settings
from .errors import LobstahError
from .identity_file import load_identity, save_identity
from .ledger import ImportReport, Ledger, iter_lines
from .protocol.identity import Identity

__all__ = ["main", "build_parser"]

Command = Callable[[argparse.Namespace, Settings], int]


class CliError(LobstahError):
    """A command that cannot do what was asked (bad file, bad arguments)."""

    type = "cli_error"


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``lobstah-core`` with ``argv``; returns the process exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    settings = Settings.from_env()
    try:
        return int(args.command(args, settings))
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

    keygen = _command(commands, "keygen", cmd_keygen, "create this node's identity (Ed25519)")
    keygen.add_argument(
        "--force", action="store_true", help="replace an existing identity (a backup is kept)"
    )

    whoami = _command(commands, "whoami", cmd_whoami, "print this node's public key")
    _json_flag(whoami)

    balance = _command(commands, "balance", cmd_balance, "earned, spent and available credit")
    _json_flag(balance)

    ledger = commands.add_parser("ledger", help="import or export receipts (JS ledger.jsonl)")
    ledger_commands = ledger.add_subparsers(metavar="ACTION", required=True)
    ledger_import = _command(
        ledger_commands, "import", cmd_ledger_import, "verify and add the receipts of a jsonl file"
    )
    ledger_import.add_argument("file", type=Path, help="a ledger.jsonl file, or - for stdin")
    _json_flag(ledger_import)
    ledger_export = _command(
        ledger_commands, "export", cmd_ledger_export, "write every receipt as ledger.jsonl"
    )
    ledger_export.add_argument(
        "file", type=Path, nargs="?", help="where to write (default: standard output)"
    )
    return parser


def _command(
    commands: Any, name: str, handler: Command, help_text: str
) -> argparse.ArgumentParser:
    parser: argparse.ArgumentParser = commands.add_parser(name, help=help_text, description=help_text)
    parser.set_defaults(command=handler)
    return parser


def _json_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print the result as JSON")


def _print_json(value: Any) -> None:
    print(json.dumps(value, indent=2))


def cmd_keygen(args: argparse.Namespace, settings: Settings) -> int:
    identity = Identity.generate()
    backup = save_identity(identity, settings.identity_path, overwrite=args.force)
    if backup is not None:
        print(f"previous identity kept at {backup}")
    print(f"identity written to {settings.identity_path}")
    print(f"pubkey {identity.pubkey}")
    return 0


def cmd_whoami(args: argparse.Namespace, settings: Settings) -> int:
    identity = load_identity(settings.identity_path)
    if args.json:
        _print_json({"pubkey": identity.pubkey})
    else:
        print(identity.pubkey)
    return 0


def cmd_balance(args: argparse.Namespace, settings: Settings) -> int:
    identity = load_identity(settings.identity_path)
    with Ledger(settings.ledger_path) as ledger:
        summary = ledger.summary(identity.pubkey)
    if args.json:
        _print_json(summary.model_dump())
        return 0
    mine = summary.self
    rows = [
        ("pubkey", mine.pubkey),
        ("earned", f"{mine.earned:,}"),
        ("spent", f"{mine.spent:,}"),
        ("net", f"{mine.net:+,}"),
        ("allowance", f"{mine.allowance:,}"),
        ("available", f"{mine.available:,}"),
        ("receipts", f"{summary.totals.receipts:,} in {settings.ledger_path}"),
    ]
    for name, value in rows:
        print(f"{name:<10} {value}")
    return 0


def cmd_ledger_import(args: argparse.Namespace, settings: Settings) -> int:
    with Ledger(settings.ledger_path) as ledger:
        if str(args.file) == "-":
            report = ledger.import_jsonl(sys.stdin)
        else:
            _require_file(args.file)
            report = ledger.import_jsonl(iter_lines(args.file))
    if args.json:
        _print_json(_report_body(report))
    else:
        _print_report(report, sys.stdout)
    return 0


def cmd_ledger_export(args: argparse.Namespace, settings: Settings) -> int:
    with Ledger(settings.ledger_path) as ledger:
        if args.file is None:
            ledger.export_jsonl(sys.stdout)
            return 0
        # Write beside the target and rename, so a failed export never leaves half a file.
        temporary = args.file.with_name(f".{args.file.name}.{os.getpid()}.tmp")
        try:
            with temporary.open("w", encoding="utf-8") as out:
                count = ledger.export_jsonl(out)
            temporary.replace(args.file)
        except OSError as exc:
            temporary.unlink(missing_ok=True)
            raise CliError(f"cannot write {args.file}: {exc.strerror or exc}") from None
    print(f"exported {count} receipts to {args.file}", file=sys.stderr)
    return 0


def _require_file(path: Path) -> None:
    if not path.is_file():
        raise CliError(f"no such file: {path}")
    if not os.access(path, os.R_OK):
        raise CliError(f"cannot read {path}: permission denied")


def _report_body(report: ImportReport) -> dict[str, Any]:
    return {
        "added": report.added,
        "duplicate": report.duplicate,
        "invalid": report.invalid,
        "malformed": report.malformed,
        "problems": [{"line": line, "reason": reason} for line, reason in report.problems],
    }


def _print_report(report: ImportReport, out: TextIO) -> None:
    print(
        f"added {report.added}, duplicate {report.duplicate}, "
        f"invalid {report.invalid}, malformed {report.malformed}",
        file=out,
    )
    for line, reason in report.problems:
        print(f"  line {line}: {reason}", file=out)

