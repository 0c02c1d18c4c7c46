"""Inference engines a worker can serve from, and how to build one by name.

Engines are imported when built: the Ollama client imports httpx, and httpx imports ``rich``
for its command line whenever rich is installed, which commands that need no engine (``balance``,
``ledger``) should not pay for.
"""

from __future__ import annotations

from typing import Literal, get_args
from urllib.parse import urlsplit

from ..timeouts import Timeouts
from .base import Usage, WorkerEngine
from .demo import DEMO_MODELS, DemoEngine

__all__ = ["WorkerEngine", "Usage", "DemoEngine", "build_engine", "EngineName", "ENGINE_NAMES"]

EngineName = Literal["ollama", "openai", "demo", "llamacpp"]
#: Every engine name, for command-line choices.
ENGINE_NAMES: tuple[str, ...] = get_args(EngineName)


def build_engine(
    name: EngineName,
    *,
    upstream: str | None = None,
    api_key: str | None = None,
    models: list[str] | None = None,
    first_token_delay: float = 0.0,
    tokens_per_second: float = 0.0,
    reply_tokens: int | None = None,
    timeouts: Timeouts | None = None,
    model_path: str | None = None,
) -> WorkerEngine:
    """The engine called ``name``.

    Args:
        upstream: Ollama's address (``ollama``; default ``$OLLAMA_HOST``) or the upstream's
            base URL (``openai``, required).
        models: for ``demo``, the model ids to serve; for ``llamacpp``, at most one: the id
            its model is served under.
        timeouts: for ``ollama`` and ``openai``, the limits of each call to the upstream by
            phase (default: see each engine).
        model_path: for ``llamacpp``, the ``.gguf`` file (default: the packaged SmolLM2).

    Raises:
        ValueError: ``openai`` without an upstream URL; ``llamacpp`` with several models.
        EngineUnavailable: ``llamacpp`` without its extra installed, or a bad model file.
    """
    if name == "ollama":
        from .ollama import OllamaEngine

        if upstream is not None:
            check_upstream_url(upstream if "://" in upstream else f"http://{upstream}")
        return OllamaEngine(host=upstream, timeouts=timeouts)
    if name == "openai":
        if not upstream:
            raise ValueError("--engine openai needs --upstream URL (e.g. http://127.0.0.1:8080/v1)")
        check_upstream_url(upstream)
        from .openai_compat import OpenAICompatibleEngine

        return OpenAICompatibleEngine(upstream, api_key=api_key, timeouts=timeouts)
    if name == "llamacpp":
        if models and len(models) > 1:
            raise ValueError("--engine llamacpp serves one model: give --model NAME once")
        from .llamacpp import LlamaCppEngine

        return LlamaCppEngine(model_path, models[0] if models else None)
    return DemoEngine(
        tuple(models or DEMO_MODELS),
        first_token_delay=first_token_delay,
        tokens_per_second=tokens_per_second,
        reply_tokens=reply_tokens,
    )


def check_upstream_url(url: str) -> None:
    """An upstream's address must be ``http(s)://host[:port][/path]``.

    Raises:
        ValueError: anything else (no scheme, another scheme, spaces, no host), named.
    """
    parts = urlsplit(url)
    problem = None
    if parts.scheme not in ("http", "https"):
        problem = "it must start with http:// or https://"
    elif not parts.hostname or any(c.isspace() for c in url):
        problem = "it has no host, or spaces in it"
    else:
        try:
            parts.port  # noqa: B018 - raises on a port that is not a number in range
        except ValueError:
            problem = "its port is not a number from 0 to 65535"
    if problem:
        raise ValueError(f"--upstream {url!r} is not an upstream URL: {problem} (e.g. http://127.0.0.1:8080/v1)")
