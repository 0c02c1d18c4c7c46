"""The router: the grid as an OpenAI-compatible provider on 127.0.0.1:17475."""

from .app import create_app

__all__ = ["create_app"]
