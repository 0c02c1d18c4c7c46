"""The worker: the process a Mac mini owner runs to lend compute to the grid."""

from .app import create_app

__all__ = ["create_app"]
