"""``lobstah-core openclaw``: add the grid to openclaw as the ``lobstah`` provider."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from ..config import ROUTER_PORT, Settings
from ..openclaw import (
    PROVIDER,
    default_config_path,
    lobstah_provider,
    merge_provider,
    write_config,
)
from ..protocol.model_names import find_model
from .common import CliError, add_command, router_url


def register(commands: Any) -> None:
    parser = add_command(commands, "openclaw", cmd_openclaw, "add the grid to openclaw's config as a provider")
    parser.add_argument("--config", type=Path, help="openclaw config (default ~/.openclaw/openclaw.json)")
    parser.add_argument("--router", type=router_url, default=f"http://127.0.0.1:{ROUTER_PORT}",
                        help="router URL (default %(default)s)")
    parser.add_argument("--api-key", default="lobstah", help="the key openclaw sends (default %(default)s; any works unless the router has --api-key)")
    parser.add_argument("--set-default", action="store_true", help="also make a grid model openclaw's default")
    parser.add_argument("--model", help="the model for --set-default (default: the first the router offers)")
    parser.add_argument("--dry-run", action="store_true", help="print the new config instead of writing it")


def cmd_openclaw(args: argparse.Namespace, settings: Settings) -> int:
    path = args.config or default_config_path()
    config = _read_config(path)
    models = _router_models(args.router, args.api_key)
    if not models:
        raise CliError(f"the router at {args.router} offers no models yet: add peers, or wait for their capacity")
    default_model = None
    if args.set_default:
        default_model = find_model(models, args.model or models[0])
        if default_model is None:
            raise CliError(f"the router does not offer {args.model!r} (it offers {', '.join(models)})")
    merged = merge_provider(config, lobstah_provider(args.router, models, args.api_key), default_model)
    if args.dry_run:
        print(json.dumps(merged, indent=2))
        return 0
    try:
        backup = write_config(path, merged)
    except OSError as exc:
        raise CliError(f"cannot write {path}: {exc.strerror or exc}") from None
    print(f"added provider {PROVIDER!r} with {len(models)} model(s) to {path}")
    if backup:
        print(f"previous config kept at {backup}")
    if default_model:
        print(f"openclaw's default model is now {PROVIDER}/{default_model}")
    print(f'try: openclaw infer model run --local --model {PROVIDER}/{default_model or models[0]} --prompt "hello"')
    return 0


def _read_config(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return {}
    except OSError as exc:
        raise CliError(f"cannot read {path}: {exc.strerror or exc}") from None
    except UnicodeDecodeError as exc:
        raise CliError(f"{path} is not plain JSON (not UTF-8 at byte {exc.start}); it was left untouched") from None
    try:
        config = json.loads(text) if text.strip() else {}
    except ValueError as exc:
        raise CliError(f"{path} is not plain JSON ({exc}); it was left untouched") from None
    if not isinstance(config, dict):
        raise CliError(f"{path} must hold a JSON object; it was left untouched")
    return config


def _router_models(router: str, api_key: str) -> list[str]:
    # Imported here: httpx loads rich for its own CLI, which other commands need not pay for.
    import httpx

    url = router.rstrip("/") + "/v1/models"
    try:
        response = httpx.get(url, headers={"Authorization": f"Bearer {api_key}"}, timeout=10)
    except httpx.HTTPError:
        raise CliError(f"no router answers at {router}: start one with `lobstah-core router start`") from None
    if response.status_code != 200:
        raise CliError(f"the router at {router} answered {response.status_code} to /v1/models")
    return [card["id"] for card in response.json().get("data", [])]
