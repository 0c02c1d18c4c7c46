"""The advertising flags, shared by ``worker start`` and ``serve``."""

from __future__ import annotations

import argparse

from ..config import AdvertiseSettings
from ..discovery.nostr_relay import DEFAULT_RELAYS
from ..protocol.url_safety import peer_url_host

__all__ = ["add_advertise_flags", "advertise_settings"]


def add_advertise_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--announce-to", metavar="TRACKER", help="advertise the worker on a tracker (opt-in)")
    parser.add_argument("--publish-via-nostr", action="store_true", help="advertise the worker on Nostr relays (opt-in)")
    parser.add_argument("--nostr-relay", action="append", dest="nostr_relays", metavar="URL",
                        help="relay to publish on (repeatable; default: the grid's default relays)")
    parser.add_argument("--announce-url", metavar="URL", help="the URL peers should use to reach the worker")
    parser.add_argument("--announce-label", metavar="LABEL", help="label in the announcement (default --label)")
    parser.add_argument("--announce-ttl", type=int, default=300, metavar="S", help="announcement TTL (default %(default)s)")


def advertise_settings(args: argparse.Namespace) -> AdvertiseSettings | None:
    """Where to advertise, from the flags; ``None`` when no advertising was asked for.

    Raises:
        ValueError: an announce URL without a place to announce, or the reverse.
        UnsafeUrl: an announce URL that is not plain http(s).
    """
    if args.announce_to is None and not args.publish_via_nostr:
        if args.announce_url:
            raise ValueError("--announce-url needs --announce-to TRACKER or --publish-via-nostr")
        return None
    if not args.announce_url:
        raise ValueError("advertising needs --announce-url URL: the address peers will call")
    peer_url_host(args.announce_url)
    relays = (args.nostr_relays or list(DEFAULT_RELAYS)) if args.publish_via_nostr else []
    return AdvertiseSettings(tracker_url=args.announce_to, nostr_relays=relays, announce_url=args.announce_url,
                             label=args.announce_label or args.label, ttl_seconds=args.announce_ttl)
