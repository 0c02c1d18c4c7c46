"""Router tests share the fixtures of tests/conftest.py (workers and routers on loopback)."""

from ..conftest import ROUTER_ID, StartRouter, add_peer, ledgered

__all__ = ["ROUTER_ID", "StartRouter", "add_peer", "ledgered"]
