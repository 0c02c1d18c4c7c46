"""``lobstah-core``: the command line of a Lobstah node.

Every command reads its paths from :class:`~lobstah_core.config.Settings` (so ``LOBSTAH_HOME``
is honoured everywhere), prints data as JSON with ``--json``, and reports failures as one
readable line on stderr with a non-zero exit code, never a traceback.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TextIO

from pydantic import ValidationError

from .config import Settings, WorkerSettings
from .engines import build_engine
from .errors import LobstahError
from .identity_file import load_identity, load_or_create_identity, save_identity
from .ledger import ImportReport, Ledger, iter_lines
from .protocol.identity import Identity
from .protocol.wire import describe_validation_error
from .worker.run import run_worker

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

    _add_worker_commands(commands)

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


def _add_worker_commands(commands: Any) -> None:
    worker = commands.add_parser("worker", help="lend this machine's compute to the grid")
    actions = worker.add_subparsers(metavar="ACTION", required=True)
    start = _command(actions, "start", cmd_worker_start, "serve completions from an engine")
    defaults = WorkerSettings()
    start.add_argument("--host", default=defaults.host, help="address to bind (default %(default)s)")
    start.add_argument("--port", type=int, default=defaults.port, help="port (default %(default)s)")
    start.add_argument("--engine", choices=["ollama", "openai", "demo"], default="ollama",
                       help="inference backend (default %(default)s)")
    start.add_argument("--upstream", metavar="URL",
                       help="Ollama address (default $OLLAMA_HOST) or OpenAI-compatible base URL")
    start.add_argument("--upstream-key", metavar="KEY", help="API key for --engine openai")
    start.add_argument("--model", action="append", dest="models", metavar="MODEL",
                       help="serve only this model (repeatable; for demo: the models to offer)")
    start.add_argument("--tier", choices=["interactive", "batch", "best-effort"], default=defaults.tier)
    start.add_argument("--concurrency", type=int, default=defaults.concurrency,
                       help="engine calls at once (default %(default)s)")
    start.add_argument("--max-queue", type=int, default=defaults.max_queue,
                       help="requests that may wait before 429 (default %(default)s)")
    start.add_argument("--label", help="a name for this worker in peer lists")
    start.add_argument("--no-credit-check", action="store_true",
                       help="serve requesters whatever their credit (friends-only grid)")
    start.add_argument("--require-signed-requests", action="store_true",
                       help="refuse requests without a valid x-lobstah-signature")
    start.add_argument("--demo-delay", type=float, default=0.2, metavar="S",
                       help="demo engine: seconds to the first token (default %(default)s)")
    start.add_argument("--demo-tps", type=float, default=40.0, metavar="N",
                       help="demo engine: tokens per second (default %(default)s)")


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


def cmd_worker_start(args: argparse.Namespace, settings: Settings) -> int:
    try:
        worker_settings = WorkerSettings(
            host=args.host,
            port=args.port,
            tier=args.tier,
            concurrency=args.concurrency,
            max_queue=args.max_queue,
            label=args.label,
            models=None if args.engine == "demo" else args.models,
            check_credit=not args.no_credit_check,
            require_signed_requests=args.require_signed_requests,
        )
        engine = build_engine(
            args.engine,
            upstream=args.upstream,
            api_key=args.upstream_key,
            models=args.models,
            first_token_delay=args.demo_delay,
            tokens_per_second=args.demo_tps,
        )
    except (ValidationError, ValueError) as exc:
        raise CliError(_first_line(exc)) from None
    identity = load_or_create_identity(settings.identity_path)
    try:
        asyncio.run(run_worker(worker_settings, identity, settings.identity_path, engine, settings.home))
    except OSError as exc:
        raise CliError(f"cannot listen on {args.host}:{args.port}: {exc.strerror or exc}") from None
    return 0


def _first_line(exc: Exception) -> str:
    if isinstance(exc, ValidationError):
        return describe_validation_error(exc)
    return str(exc).splitlines()[0]


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

