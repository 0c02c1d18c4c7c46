"""Batch commands: submit, list, status, results, cancel — over a router's Batch API (HTTP)."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

from ..config import ROUTER_PORT, Settings
from ..node_view import busiest_peers
from ..router.state import CHAT_PATH
from .common import CliError, add_command, add_json_flag, print_json, router_url

#: Seconds between two looks at a batch while ``submit --wait`` waits.
POLL_S = 1.0
_ENDED = ("completed", "failed", "expired", "cancelled")


def register(commands: Any) -> None:
    batch = commands.add_parser("batch", help="run many chat or embeddings requests over the grid (OpenAI Batch API)")
    actions = batch.add_subparsers(metavar="ACTION", required=True)
    submit = add_command(actions, "submit", cmd_submit, "upload a JSONL file of requests and start it as a batch")
    submit.add_argument("file", type=Path, metavar="FILE.jsonl",
                        help='one request a line: {"custom_id", "method": "POST", "url": "/v1/chat/completions", "body"}; '
                             'every line to the same url (/v1/embeddings works too)')
    submit.add_argument("--wait", action="store_true", help="show progress until the batch ends")
    submit.add_argument("--window", default="24h", help="completion window, e.g. 24h, 90m (default %(default)s)")
    listing = add_command(actions, "list", cmd_list, "the router's batches, newest first")
    listing.add_argument("--limit", type=int, default=20, help="at most this many (1-100, default %(default)s)")
    status = add_command(actions, "status", cmd_status, "where a batch stands")
    results = add_command(actions, "results", cmd_results, "a batch's output file (its answers, JSONL)")
    results.add_argument("-o", "--output", type=Path, metavar="FILE", help="write to FILE instead of stdout")
    results.add_argument("--errors", action="store_true", help="the error file instead (refused or expired requests)")
    cancel = add_command(actions, "cancel", cmd_cancel, "stop a batch; what is done stays done")
    for parser in (status, results, cancel):
        parser.add_argument("batch_id", metavar="ID")
    for parser in (submit, listing, status, results, cancel):
        parser.add_argument("--router", type=router_url, default=f"http://127.0.0.1:{ROUTER_PORT}",
                            help="router URL (default %(default)s)")
        parser.add_argument("--api-key", default="lobstah", help="the router's API key, if it needs one")
    for parser in (submit, listing, status, cancel):
        add_json_flag(parser)


def cmd_submit(args: argparse.Namespace, settings: Settings) -> int:
    try:
        content = args.file.read_bytes()
    except OSError as exc:
        raise CliError(f"cannot read {args.file}: {exc.strerror or exc}") from None
    router = _Router(args)
    upload = router.call("POST", "/v1/files", files={"file": (args.file.name, content)}, data={"purpose": "batch"})
    batch = router.call("POST", "/v1/batches", json={
        "input_file_id": upload["id"], "endpoint": endpoint_of(content), "completion_window": args.window,
    })
    if not args.wait:
        _show(batch, args.json)
        return 0
    print(f"{batch['id']}: {batch['request_counts']['total']} requests", file=sys.stderr)
    while batch["status"] not in _ENDED:
        _progress(batch)
        time.sleep(POLL_S)
        batch = router.call("GET", f"/v1/batches/{batch['id']}")
    _progress(batch, end=True)
    _show(batch, args.json)
    return 0 if batch["status"] == "completed" else 1


def endpoint_of(content: bytes) -> str:
    """The batch's endpoint: the ``url`` of the file's first request (the router checks that
    every line has it, and names the lines that do not)."""
    for raw in content.split(b"\n"):
        if raw.strip():
            try:
                url = json.loads(raw).get("url")
            except (ValueError, AttributeError):
                break  # the upload has already named the bad line
            return url if isinstance(url, str) else CHAT_PATH
    return CHAT_PATH


def cmd_list(args: argparse.Namespace, settings: Settings) -> int:
    batches = _Router(args).call("GET", "/v1/batches", params={"limit": args.limit})["data"]
    if args.json:
        print_json(batches)
    elif not batches:
        print("no batches yet; start one with `lobstah-core batch submit FILE.jsonl`")
    for batch in [] if args.json else batches:
        print(_line(batch))
    return 0


def cmd_status(args: argparse.Namespace, settings: Settings) -> int:
    router = _Router(args)
    batch = router.call("GET", f"/v1/batches/{args.batch_id}")
    _show(batch, args.json)
    if not args.json and batch.get("items_per_peer"):
        counts = batch["items_per_peer"]
        print(f"  answered by: {', '.join(busiest_peers(counts, router.peer_names(), len(counts)))}")
    return 0


def cmd_results(args: argparse.Namespace, settings: Settings) -> int:
    router = _Router(args)
    batch = router.call("GET", f"/v1/batches/{args.batch_id}")
    file_id = batch["error_file_id" if args.errors else "output_file_id"]
    if file_id is None:
        what = "no error file" if args.errors else "no output file"
        raise CliError(f"batch {args.batch_id} has {what} ({batch['status']}); see `lobstah-core batch status {args.batch_id}`")
    content = router.call("GET", f"/v1/files/{file_id}/content", raw=True)
    if args.output is None:
        sys.stdout.buffer.write(content)
        return 0
    try:
        args.output.write_bytes(content)
    except OSError as exc:
        raise CliError(f"cannot write {args.output}: {exc.strerror or exc}") from None
    lines = content.count(b"\n")
    print(f"wrote {lines} lines to {args.output}", file=sys.stderr)
    return 0


def cmd_cancel(args: argparse.Namespace, settings: Settings) -> int:
    _show(_Router(args).call("POST", f"/v1/batches/{args.batch_id}/cancel"), args.json)
    return 0


class _Router:
    """A router's Batch API over HTTP; every failure becomes one :class:`CliError` line."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.url = args.router
        self.headers = {"Authorization": f"Bearer {args.api_key}"}

    def call(self, method: str, path: str, *, raw: bool = False, **options: Any) -> Any:
        # Imported here: httpx loads rich for its own CLI, which other commands need not pay for.
        import httpx

        try:
            response = httpx.request(method, self.url + path, headers=self.headers, timeout=60, **options)
        except httpx.HTTPError:
            raise CliError(f"no router answers at {self.url}: start one with `lobstah-core router start`") from None
        if response.status_code >= 400:
            raise CliError(_error_line(response))
        return response.content if raw else response.json()

    def peer_names(self) -> dict[str, str]:
        """Labels by pubkey from the router's ``GET /peers`` (none if it cannot say)."""
        try:
            peers = self.call("GET", "/peers")
            return {p["pubkey"]: p["label"] for p in peers if isinstance(p, dict) and p.get("label")}
        except (CliError, ValueError, TypeError, KeyError):
            return {}


def _error_line(response: Any) -> str:
    try:
        error = response.json()["error"]
        message = error["message"]
    except (ValueError, KeyError, TypeError):
        return f"the router answered {response.status_code}"
    lines = [f"line {e['line']}: {e['message']}" for e in error.get("errors") or [] if e.get("line")]
    return "; ".join(lines) if lines else message


def _progress(batch: dict[str, Any], end: bool = False) -> None:
    counts = batch["request_counts"]
    total, settled = counts["total"] or 1, counts["completed"] + counts["failed"]
    filled = 30 * settled // total
    paused = f"  {batch['paused_reason']}" if batch.get("paused_reason") else ""
    line = (f"[{'#' * filled}{'.' * (30 - filled)}] {settled}/{counts['total']}"
            f"  {counts['failed']} failed  {batch['status']}{paused}")
    if sys.stderr.isatty():
        print(f"\r{line}\033[K", end="\n" if end else "", file=sys.stderr, flush=True)
    else:
        print(line, file=sys.stderr, flush=True)


def _line(batch: dict[str, Any]) -> str:
    counts = batch["request_counts"]
    when = time.strftime("%Y-%m-%d %H:%M", time.localtime(batch["created_at"]))
    return (f"{batch['id']}  {batch['status']:<11} {counts['completed']}/{counts['total']} done"
            f"  {counts['failed']} failed  {when}")


def _show(batch: dict[str, Any], as_json: bool) -> None:
    if as_json:
        print_json(batch)
        return
    print(_line(batch))
    for key in ("output_file_id", "error_file_id", "paused_reason"):
        if batch.get(key):
            print(f"  {key.replace('_', ' ')}: {batch[key]}")
