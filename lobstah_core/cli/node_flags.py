"""The flags of a whole node, shared by ``lobstah-core serve`` and ``lobstah-tui``, so both
take the same options and build the same :class:`~lobstah_core.node.NodeSettings`."""

from __future__ import annotations

import argparse

from ..config import DEFAULT_HOST, ROUTER_PORT, WORKER_PORT, RouterSettings, WorkerSettings
from ..discovery.reach import bind_warning
from ..engines import ENGINE_NAMES
from ..node import EngineSettings, NodeSettings, SyncSettings
from .advertise import add_advertise_flags, advertise_settings
from .common import add_timeout_flags, timeouts_from

__all__ = ["add_node_flags", "node_settings", "node_warnings"]


def add_node_flags(parser: argparse.ArgumentParser) -> None:
    """Worker, router, engine, advertise and sync flags."""
    parser.add_argument("--worker", action=argparse.BooleanOptionalAction, default=True, help="lend compute too (default on)")
    parser.add_argument("--engine", choices=ENGINE_NAMES, default="ollama", help="this node's worker engine")
    parser.add_argument("--model-path", metavar="FILE.gguf", help="llamacpp engine: the model file (default: SmolLM2-135M)")
    parser.add_argument("--upstream", metavar="URL", help="Ollama address or OpenAI-compatible base URL")
    parser.add_argument("--host", default=DEFAULT_HOST,
                        help="address the worker listens on (default %(default)s; 0.0.0.0 to be reachable by peers)")
    parser.add_argument("--router-port", type=int, default=None,
                        help=f"the router's port (default {ROUTER_PORT}; with --demo: a free one)")
    parser.add_argument("--worker-port", type=int, default=WORKER_PORT)
    parser.add_argument("--label", help="this worker's name in peer lists")
    add_advertise_flags(parser)
    parser.add_argument("--sync-from", action="append", default=[], metavar="TRACKER", help="tracker to sync peers from")
    parser.add_argument("--sync-relay", action="append", default=[], metavar="URL", help="Nostr relay to sync peers from")
    parser.add_argument("--cors-origin", action="append", default=[], metavar="ORIGIN",
                        help="let browser pages from ORIGIN call the router (repeatable; loopback pages always may)")
    add_timeout_flags(parser, "peers (the router's)")


def node_settings(args: argparse.Namespace) -> NodeSettings:
    """The node the flags describe. The router stays on loopback: it is this machine's endpoint.

    Raises:
        pydantic.ValidationError, ValueError: flags out of bounds or inconsistent.
        CliError: a timeout that is not a positive number of seconds.
    """
    timeouts = timeouts_from(args)
    router = RouterSettings(
        port=ROUTER_PORT if args.router_port is None else args.router_port, cors_origins=args.cors_origin, api_key=getattr(args, "api_key", None),
        connect_timeout=timeouts.connect_s, first_byte_timeout=timeouts.first_byte_s,
        idle_timeout=timeouts.idle_s, total_timeout=timeouts.total_s,
    )
    return NodeSettings(
        router=router,
        worker=WorkerSettings(host=args.host, port=args.worker_port, label=args.label) if args.worker else None,
        engine=EngineSettings(name=args.engine, upstream=args.upstream, model_path=args.model_path),
        advertise=advertise_settings(args),
        sync=SyncSettings(trackers=args.sync_from, relays=args.sync_relay),
    )


def node_warnings(settings: NodeSettings) -> list[str]:
    """What the operator should hear before advertising (e.g. a URL nobody can reach)."""
    if settings.worker is None or settings.advertise is None:
        return []
    warning = bind_warning(settings.worker.host, settings.advertise.announce_url)
    return [warning] if warning else []
