"""The tracker: an opt-in, deliberately dumb registry of signed worker announcements."""

from .app import create_app

__all__ = ["create_app"]
