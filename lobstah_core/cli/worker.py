"""Worker commands: worker start."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from pydantic import ValidationError

from ..config import Settings, WorkerSettings
from ..discovery.reach import bind_warning
from ..engines import ENGINE_NAMES, build_engine
from ..identity_file import load_or_create_identity
from ..tasks import run
from ..worker.run import run_worker
from .advertise import add_advertise_flags, advertise_settings
from .common import CliError, add_command, add_timeout_flags, finite_non_negative, first_line, timeouts_from


def register(commands: Any) -> None:
    worker = commands.add_parser("worker", help="lend this machine's compute to the grid")
    actions = worker.add_subparsers(metavar="ACTION", required=True)
    start = add_command(actions, "start", cmd_worker_start, "serve completions from an engine")
    defaults = WorkerSettings()
    start.add_argument("--host", default=defaults.host, help="address to bind (default %(default)s)")
    start.add_argument("--port", type=int, default=defaults.port, help="port (default %(default)s)")
    start.add_argument("--engine", choices=ENGINE_NAMES, default="ollama",
                       help="inference backend (default %(default)s)")
    start.add_argument("--upstream", metavar="URL",
                       help="Ollama address (default $OLLAMA_HOST) or OpenAI-compatible base URL")
    start.add_argument("--upstream-key", metavar="KEY", help="API key for --engine openai")
    start.add_argument("--model", action="append", dest="models", metavar="MODEL",
                       help="serve only this model (repeatable; llama3.2 means llama3.2:latest; for demo: the models to offer; for llamacpp: the name its model is served under)")
    start.add_argument("--model-path", metavar="FILE.gguf",
                       help="llamacpp engine: the model file (default: the packaged SmolLM2-135M, as smollm2:135m)")
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
    add_advertise_flags(start)
    add_timeout_flags(start, "the upstream engine (ollama, openai)")
    start.add_argument("--demo-delay", type=finite_non_negative, default=0.2, metavar="S",
                       help="demo engine: seconds to the first token (default %(default)s)")
    start.add_argument("--demo-tps", type=finite_non_negative, default=40.0, metavar="N",
                       help="demo engine: tokens per second (default %(default)s)")
    start.add_argument("--demo-reply-tokens", type=int, metavar="N",
                       help="demo engine: length of every reply (default: 16-63 by prompt)")


def cmd_worker_start(args: argparse.Namespace, settings: Settings) -> int:
    try:
        worker_settings = WorkerSettings(
            host=args.host,
            port=args.port,
            tier=args.tier,
            concurrency=args.concurrency,
            max_queue=args.max_queue,
            label=args.label,
            models=None if args.engine in ("demo", "llamacpp") else args.models,
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
            reply_tokens=args.demo_reply_tokens,
            timeouts=timeouts_from(args),
            model_path=args.model_path,
        )
        advertise = advertise_settings(args)
    except (ValidationError, ValueError) as exc:
        raise CliError(first_line(exc)) from None
    warning = bind_warning(args.host, advertise.announce_url) if advertise else None
    if warning:
        print(f"warning: {warning}", file=sys.stderr)
    identity = load_or_create_identity(settings.identity_path)
    try:
        run(run_worker(worker_settings, identity, settings.identity_path, engine, settings.home, advertise=advertise))
    except OSError as exc:
        raise CliError(f"cannot listen on {args.host}:{args.port}: {exc.strerror or exc}") from None
    return 0

