"""Wiring the router into openclaw's config as a provider named ``lobstah``.

The merge is pure and conservative: it sets ``models.mode`` to ``merge`` and replaces only
``models.providers.lobstah`` (and, when asked, the default agent model); every other provider
and setting stays as it was. Files are written atomically after a timestamped backup.
"""

from __future__ import annotations

import copy
import json
import os
import stat
import time
from pathlib import Path
from typing import Any

from .errors import ConfigError

__all__ = ["PROVIDER", "lobstah_provider", "merge_provider", "default_config_path", "write_config"]

PROVIDER = "lobstah"
#: What we tell openclaw of models whose limits the grid does not report.
CONTEXT_WINDOW = 32_768
MAX_TOKENS = 8_192


def default_config_path(environ: dict[str, str] | None = None) -> Path:
    """``$HOME/.openclaw/openclaw.json``."""
    env = os.environ if environ is None else environ
    return Path(env.get("HOME") or Path.home()) / ".openclaw" / "openclaw.json"


def lobstah_provider(router_url: str, models: list[str], api_key: str) -> dict[str, Any]:
    """The ``models.providers.lobstah`` entry for a router offering ``models``."""
    return {
        "baseUrl": router_url.rstrip("/") + "/v1",
        "api": "openai-completions",
        "apiKey": api_key,
        "models": [
            {
                "id": model,
                "name": f"{model} (Lobstah grid)",
                "reasoning": False,
                "input": ["text"],
                "cost": {"input": 0, "output": 0, "cacheRead": 0, "cacheWrite": 0},
                "contextWindow": CONTEXT_WINDOW,
                "maxTokens": MAX_TOKENS,
            }
            for model in models
        ],
    }


def merge_provider(config: dict[str, Any], provider: dict[str, Any], default_model: str | None) -> dict[str, Any]:
    """A copy of ``config`` with the lobstah provider merged in.

    Args:
        default_model: when given, also make ``lobstah/<default_model>`` the agents' default.

    Raises:
        ConfigError: ``models``, ``models.providers``, ``agents`` or ``agents.defaults`` is
            there but not an object (the config is left as it was).
    """
    merged = copy.deepcopy(config)
    models = _object_at(merged, "models")
    models["mode"] = "merge"
    _object_at(merged, "models", "providers")[PROVIDER] = provider
    if default_model is not None:
        defaults = _object_at(merged, "agents", "defaults")
        primary = f"{PROVIDER}/{default_model}"
        # openclaw takes the default model as {"primary", "fallbacks"} or as a bare string.
        if isinstance(defaults.get("model"), dict):
            defaults["model"]["primary"] = primary
        else:
            defaults["model"] = primary if isinstance(defaults.get("model"), str) else {"primary": primary}
    return merged


def _object_at(config: dict[str, Any], *keys: str) -> dict[str, Any]:
    """The object at ``config[keys[0]][keys[1]]…``, created empty where missing."""
    node = config
    for depth, key in enumerate(keys, 1):
        node = node.setdefault(key, {})
        if not isinstance(node, dict):
            where = ".".join(keys[:depth])
            kind = type(node).__name__
            raise ConfigError(f"openclaw config: {where} is a {kind}, not an object; the file was left untouched")
    return node


def write_config(path: Path, config: dict[str, Any]) -> Path | None:
    """Write ``config`` to ``path`` atomically; returns the backup of the old file, if any.

    The config holds API keys (other providers' and the router's), so nobody else may read it
    at any moment: a new file is 0600, a rewritten one keeps its mode, and the backup is the
    old file itself (a hard link, as ``keygen --force`` keeps an identity's), mode and all.

    Raises:
        OSError: the folder or file cannot be written.
    """
    backup = None
    path.parent.mkdir(parents=True, exist_ok=True)
    mode = 0o600
    if path.exists():
        mode = stat.S_IMODE(path.stat().st_mode)
        backup = _free_backup_name(path)
        os.link(path, backup)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
        os.fchmod(handle.fileno(), mode)
        handle.write(json.dumps(config, indent=2) + "\n")
    os.replace(temporary, path)
    return backup


def _free_backup_name(path: Path) -> Path:
    """``<name>.<YYYYmmdd-HHMMSS>.bak``, with ``-2``, ``-3``… for more backups in one second
    (each keeps the file as it was before that run)."""
    stem = f"{path.name}.{time.strftime('%Y%m%d-%H%M%S')}"
    backup, n = path.with_name(f"{stem}.bak"), 1
    while backup.exists():
        n += 1
        backup = path.with_name(f"{stem}-{n}.bak")
    return backup
