"""Ledger commands: import and export the JS ledger.jsonl format."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any, TextIO

from ..config import Settings
from ..ledger import ImportReport, Ledger, iter_lines
from .common import CliError, add_command, add_json_flag, print_json


def register(commands: Any) -> None:
    ledger = commands.add_parser("ledger", help="import or export receipts (JS ledger.jsonl)")
    actions = ledger.add_subparsers(metavar="ACTION", required=True)
    importer = add_command(actions, "import", cmd_ledger_import, "verify and add the receipts of a jsonl file")
    importer.add_argument("file", type=Path, help="a ledger.jsonl file, or - for stdin")
    add_json_flag(importer)
    exporter = add_command(actions, "export", cmd_ledger_export, "write every receipt as ledger.jsonl")
    exporter.add_argument("file", type=Path, nargs="?", help="where to write (default: standard output)")


def cmd_ledger_import(args: argparse.Namespace, settings: Settings) -> int:
    with Ledger(settings.ledger_path) as ledger:
        if str(args.file) == "-":
            report = ledger.import_jsonl(sys.stdin)
        else:
            _require_file(args.file)
            report = ledger.import_jsonl(iter_lines(args.file))
    if args.json:
        print_json(_report_body(report))
    else:
        _print_report(report, sys.stdout)
    # Good lines are stored whatever the bad ones were; the status says some were refused.
    return 1 if report.invalid or report.malformed else 0


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
