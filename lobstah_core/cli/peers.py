"""Peer list commands: peers add, remove, list."""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import os
import sys
import time
from typing import Any

import aiohttp
from pydantic import TypeAdapter, ValidationError

from ..clock import wall_clock_ms
from ..config import Label, Settings
from ..discovery.gossip import gossip
from ..discovery.merge import SyncReport, merge_announcements
from ..discovery.nostr_relay import DEFAULT_RELAYS
from ..discovery.tracker_client import TrackerClient
from ..protocol.schemas import Capacity
from ..protocol.url_safety import UrlPolicy
from ..router.peers import Peer, PeerStore
from .common import CliError, add_command, add_json_flag, finite_positive, first_line, print_json


def register(commands: Any) -> None:
    peers = commands.add_parser("peers", help="the peers this node's router may call")
    actions = peers.add_subparsers(metavar="ACTION", required=True)
    add = add_command(actions, "add", cmd_peers_add, "add (or update) a peer by hand")
    add.add_argument("pubkey", help="the worker's lob1… public key")
    add.add_argument("url", help="where it listens, e.g. http://192.168.1.20:17474")
    add.add_argument("label", nargs="?", help="a name to show for it")
    add.add_argument("--no-check", action="store_true", help="add it without asking it who it is (say, while it is off)")
    remove = add_command(actions, "remove", cmd_peers_remove, "remove a peer")
    remove.add_argument("pubkey")
    add_json_flag(add_command(actions, "list", cmd_peers_list, "show the peer list"))
    sync = add_command(actions, "sync", cmd_peers_sync, "merge the verified peers a tracker lists")
    sync.add_argument("tracker", help="the tracker's URL, e.g. https://tracker.example.com")
    sync.add_argument("--allow-loopback", action="store_true",
                      help="accept peers on loopback (single-machine grids; also LOBSTAH_ALLOW_LOOPBACK=1)")
    add_json_flag(sync)
    gossip_cmd = add_command(actions, "gossip", cmd_peers_gossip, "merge the verified peers announced on Nostr")
    gossip_cmd.add_argument("--nostr-relay", action="append", dest="relays", metavar="URL",
                            help="relay to read (repeatable; default: the grid's default relays)")
    gossip_cmd.add_argument("--allow-loopback", action="store_true", help="accept peers on loopback")
    gossip_cmd.add_argument("--idle", type=finite_positive, default=8.0, help="stop after this many quiet seconds (default %(default)s)")
    add_json_flag(gossip_cmd)


_LABEL: TypeAdapter[str] = TypeAdapter(Label)


def cmd_peers_add(args: argparse.Namespace, settings: Settings) -> int:
    try:
        label = None if args.label is None else _LABEL.validate_python(args.label)
    except ValidationError as exc:
        raise CliError(f"not a valid label: {exc.errors()[0]['msg']}") from None
    try:
        peer = Peer(pubkey=args.pubkey, url=args.url, label=label)
    except ValidationError as exc:
        raise CliError(f"not a valid peer: {first_line(exc)}") from None
    new = PeerStore(settings.peers_path).add(peer)
    print(f"{'added' if new else 'updated'} {peer.name} {peer.url}")
    if not args.no_check:
        ok, line = check_peer(peer)
        print(line, file=sys.stdout if ok else sys.stderr)
    return 0


def check_peer(peer: Peer, timeout: float = 2.0) -> tuple[bool, str]:
    """Whether ``peer`` answers as the worker the peer list says it is, and one line on it."""
    # Imported here: httpx loads rich for its own CLI, which other commands need not pay for.
    import httpx

    try:
        response = httpx.get(peer.url.rstrip("/") + "/capacity", timeout=timeout)
        capacity = Capacity.model_validate_json(response.content) if response.status_code == 200 else None
    except httpx.HTTPError as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        return False, f"warning: it is not answering now ({reason}); the router will use it once it does"
    except ValidationError:
        capacity = None
    if capacity is None:
        return False, f"warning: it answers, but not as a Lobstah worker (GET /capacity: {response.status_code})"
    if capacity.pubkey != peer.pubkey:
        return False, (f"warning: it answers as {capacity.pubkey[:16]}…, not {peer.pubkey[:16]}…; "
                       "the router will not use it until the keys match")
    return True, f"it answers; models: {', '.join(capacity.models) or 'none yet'}"


def cmd_peers_remove(args: argparse.Namespace, settings: Settings) -> int:
    if not PeerStore(settings.peers_path).remove(args.pubkey):
        raise CliError(f"no peer {args.pubkey} in {settings.peers_path}")
    print(f"removed {args.pubkey}")
    return 0


def cmd_peers_list(args: argparse.Namespace, settings: Settings) -> int:
    peers = PeerStore(settings.peers_path).load()
    if args.json:
        print_json([p.model_dump(mode="json", by_alias=True, exclude_none=True) for p in peers])
        return 0
    if not peers:
        print(f"no peers yet ({settings.peers_path}); add one with `lobstah-core peers add PUBKEY URL`")
        return 0
    now = int(time.time() * 1000)
    for peer in peers:
        expiry = ""
        if peer.expires_at is not None:
            left = (peer.expires_at - now) // 1000
            expiry = f"  expires in {left}s" if left > 0 else "  expired"
        print(f"{peer.label or '-':<16} {peer.pubkey[:16]}…  {peer.url:<32} {peer.source}{expiry}")
    return 0


def cmd_peers_sync(args: argparse.Namespace, settings: Settings) -> int:
    report = asyncio.run(_sync(args.tracker, PeerStore(settings.peers_path), _policy(args)))
    return _print_report(report, args.tracker, args.json)


def cmd_peers_gossip(args: argparse.Namespace, settings: Settings) -> int:
    relays = args.relays or list(DEFAULT_RELAYS)
    report = asyncio.run(_gossip(relays, PeerStore(settings.peers_path), _policy(args), args.idle))
    _print_report(report, ", ".join(relays), args.json)
    failed = {who for who, _ in report.rejected} & set(relays)
    if failed == set(relays):
        raise CliError(f"no relay answered ({len(relays)} tried); peers.json is unchanged")
    return 0


def _policy(args: argparse.Namespace) -> UrlPolicy:
    policy = UrlPolicy.from_env(os.environ)
    return dataclasses.replace(policy, allow_loopback=True) if args.allow_loopback else policy


def _print_report(report: SyncReport, where: str, as_json: bool) -> int:
    if as_json:
        print_json({"added": report.added, "refreshed": report.refreshed,
                    "rejected": [{"pubkey": who, "reason": why} for who, why in report.rejected]})
        return 0
    print(f"added {len(report.added)}, refreshed {len(report.refreshed)}, rejected {len(report.rejected)} "
          f"from {where}")
    for pubkey in report.added:
        print(f"  + {pubkey}")
    for who, why in report.rejected:
        print(f"  ! {who[:20]}…  {why}")
    return 0


async def _sync(tracker: str, store: PeerStore, policy: UrlPolicy) -> SyncReport:
    async with aiohttp.ClientSession() as session:
        raw = await TrackerClient(session, tracker).announcements()
    return await merge_announcements(raw, store, "tracker", policy, wall_clock_ms())


async def _gossip(relays: list[str], store: PeerStore, policy: UrlPolicy, idle: float) -> SyncReport:
    found, refused = await gossip(relays, idle=idle)
    report = await merge_announcements(found, store, "nostr", policy, wall_clock_ms())
    report.rejected[:0] = refused
    return report
