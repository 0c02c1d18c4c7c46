"""Identity and balance commands: keygen, whoami, balance."""

from __future__ import annotations

import argparse
from typing import Any

from ..config import Settings
from ..identity_file import load_identity, save_identity
from ..ledger import Ledger
from ..protocol.identity import Identity
from .common import add_command, add_json_flag, print_json


def register(commands: Any) -> None:
    keygen = add_command(commands, "keygen", cmd_keygen, "create this node's identity (Ed25519)")
    keygen.add_argument(
        "--force", action="store_true", help="replace an existing identity (a backup is kept)"
    )
    add_json_flag(add_command(commands, "whoami", cmd_whoami, "print this node's public key"))
    add_json_flag(add_command(commands, "balance", cmd_balance, "earned, spent and available credit"))


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
        print_json({"pubkey": identity.pubkey})
    else:
        print(identity.pubkey)
    return 0


def cmd_balance(args: argparse.Namespace, settings: Settings) -> int:
    identity = load_identity(settings.identity_path)
    with Ledger(settings.ledger_path) as ledger:
        summary = ledger.summary(identity.pubkey)
    if args.json:
        print_json(summary.model_dump())
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
