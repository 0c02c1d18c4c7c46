"""Whether the URL a worker announces can reach the address it listens on.

A worker bound to loopback (the default) cannot be called from another machine, whatever URL
it announces; this is the check that says so before anyone is told to call it.
"""

from __future__ import annotations

import ipaddress
from urllib.parse import urlsplit

__all__ = ["bind_warning"]

_LOOPBACK_NAMES = {"localhost", "localhost.localdomain", "ip6-localhost"}


def _is_loopback(host: str) -> bool:
    host = host.strip("[]").lower()
    if host in _LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a name: it may resolve anywhere, assume beyond this machine


def bind_warning(bind_host: str, announce_url: str) -> str | None:
    """One line saying why peers cannot reach ``announce_url``, or None when they may.

    Args:
        bind_host: the address the worker listens on (``--host``).
        announce_url: the URL it announces (``--announce-url``).

    Only the certain case is reported: a loopback bind announced under a non-loopback host.
    (A specific LAN address announced under another name may still be right, e.g. behind NAT.)
    """
    announced = urlsplit(announce_url).hostname or ""
    if _is_loopback(bind_host) and not _is_loopback(announced):
        return (f"the worker listens on {bind_host} only, so peers cannot reach {announce_url}: "
                f"start it with --host 0.0.0.0 (or the address peers use)")
    return None
