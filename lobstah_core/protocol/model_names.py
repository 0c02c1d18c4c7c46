"""Model names as Ollama writes them: ``name:tag``, where a name without a tag means ``:latest``.

``ollama run llama3.2`` runs ``llama3.2:latest``, and ``ollama list`` (so a worker's
``/capacity``) shows only the tagged form. A client asking the grid for ``llama3.2`` means that
model too, so routers and workers match names with the default tag filled in. The request is
passed on as the client wrote it: Ollama takes either form.
"""

from __future__ import annotations

from collections.abc import Collection

__all__ = ["DEFAULT_TAG", "with_tag", "find_model", "lists_model"]

DEFAULT_TAG = "latest"


def with_tag(name: str) -> str:
    """``name`` with the default tag if it has none: ``llama3.2`` → ``llama3.2:latest``.

    The tag is what follows a colon in the last path segment, so a registry's port
    (``host:5000/model``) is not one.
    """
    return name if ":" in name.rpartition("/")[2] else f"{name}:{DEFAULT_TAG}"


def find_model(models: Collection[str], name: str) -> str | None:
    """The entry of ``models`` (a peer's offer, an operator's choice) that is the model
    ``name``, or ``None``."""
    if name in models:  # the common case, and the request path's fast lane
        return name
    tagged = with_tag(name)
    return next((model for model in models if with_tag(model) == tagged), None)


def lists_model(models: Collection[str], name: str) -> bool:
    """Whether ``models`` includes the model ``name``."""
    return find_model(models, name) is not None
