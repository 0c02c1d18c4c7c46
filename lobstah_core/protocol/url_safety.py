"""URL safety for peers learned from discovery.

A tracker or a Nostr relay can hand us any URL; calling it blindly would let a stranger point
our router at the cloud metadata service or at services on our own loopback. Discovered URLs
are checked when they are merged and again at request time (against DNS rebinding), each time
on the addresses the host resolves to. Resolution is I/O, so callers do it and pass the
addresses in; this module only decides.

Peers an operator adds by hand skip this check (they may be loopback).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

from ..errors import UnsafeUrl

__all__ = ["UrlPolicy", "peer_url_host", "check_address", "check_peer_url"]

_TRUE = {"1", "true", "yes", "on"}
_CGNAT = ipaddress.ip_network("100.64.0.0/10")
_RFC1918 = tuple(ipaddress.ip_network(n) for n in ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16"))
_ULA = ipaddress.ip_network("fc00::/7")
#: Cloud metadata services outside the link-local range: AWS over IPv6, Alibaba Cloud.
_METADATA = frozenset(ipaddress.ip_address(a) for a in ("fd00:ec2::254", "100.100.100.200"))
#: IPv6 forms whose last 32 bits are an IPv4 address: IPv4-compatible (::a.b.c.d, RFC 4291)
#: and the NAT64 well-known prefix (64:ff9b::/96, RFC 6052). ::ffff:a.b.c.d is ``ipv4_mapped``.
_EMBEDS_IPV4 = (ipaddress.ip_network("::/96"), ipaddress.ip_network("64:ff9b::/96"))


@dataclass(frozen=True)
class UrlPolicy:
    """Which address ranges a discovered peer may resolve to."""

    #: [ext] let discovered loopback peers through (single-machine grids, tests).
    allow_loopback: bool = False
    #: Also refuse RFC 1918, ULA (fc00::/7) and CGNAT (100.64.0.0/10) addresses.
    block_private: bool = False

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> UrlPolicy:
        """The policy set by ``LOBSTAH_ALLOW_LOOPBACK`` and ``LOBSTAH_BLOCK_PRIVATE_ADDRS``."""
        return cls(
            allow_loopback=environ.get("LOBSTAH_ALLOW_LOOPBACK", "").lower() in _TRUE,
            block_private=environ.get("LOBSTAH_BLOCK_PRIVATE_ADDRS", "").lower() in _TRUE,
        )


def peer_url_host(url: str) -> str:
    """The host of a peer URL, after checking it is plain http(s) with a host.

    Raises:
        UnsafeUrl: another scheme, no host, or credentials in the URL.
    """
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError on a malformed port
    except ValueError:
        raise UnsafeUrl(f"not a valid URL: {url[:200]!r}") from None
    if parts.scheme not in ("http", "https"):
        raise UnsafeUrl(f"peer URLs must be http or https, not {parts.scheme or 'none'!r}")
    if not parts.hostname:
        raise UnsafeUrl(f"peer URL has no host: {url[:200]!r}")
    if parts.username is not None or parts.password is not None:
        raise UnsafeUrl("peer URLs must not carry credentials")
    return parts.hostname


def check_address(address: str, policy: UrlPolicy) -> None:
    """Refuse one resolved IP address that a discovered peer must not use.

    Raises:
        UnsafeUrl: naming the address and why.
    """
    try:
        ip = _embedded_ipv4(ipaddress.ip_address(address.split("%", 1)[0]))
    except ValueError:
        raise UnsafeUrl(f"not an IP address: {address!r}") from None
    # Whatever LOBSTAH_BLOCK_PRIVATE_ADDRS says (WIRE.md "URL safety").
    if ip in _METADATA:
        raise UnsafeUrl(f"{address} is a cloud metadata address")
    # Link-local covers 169.254.169.254, the cloud metadata service: refused always.
    if ip.is_link_local:
        raise UnsafeUrl(f"{address} is link-local (metadata services live there)")
    if ip.is_unspecified:
        raise UnsafeUrl(f"{address} is an unspecified address")
    if ip.is_multicast:
        raise UnsafeUrl(f"{address} is a multicast address")
    if ip.is_loopback and not policy.allow_loopback:
        raise UnsafeUrl(f"{address} is loopback (set LOBSTAH_ALLOW_LOOPBACK=1 to allow)")
    if policy.block_private and not ip.is_loopback and _is_private(ip):
        raise UnsafeUrl(f"{address} is a private address (LOBSTAH_BLOCK_PRIVATE_ADDRS is set)")


def check_peer_url(url: str, addresses: Iterable[str], policy: UrlPolicy) -> None:
    """Refuse a discovered peer URL unless every address its host resolves to is allowed.

    Args:
        url: the peer's URL as announced.
        addresses: what the URL's host resolved to (an IP-literal host resolves to itself).
        policy: the ranges to refuse.

    Raises:
        UnsafeUrl: the URL or any of its addresses is refused, or it resolved to nothing.
    """
    host = peer_url_host(url)
    resolved = list(addresses)
    if not resolved:
        raise UnsafeUrl(f"{host} resolves to no address")
    for address in resolved:
        check_address(address, policy)


def _embedded_ipv4(
    ip: ipaddress.IPv4Address | ipaddress.IPv6Address,
) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    """The IPv4 address an IPv6 form embeds (so it is judged as that address), else ``ip``."""
    if isinstance(ip, ipaddress.IPv4Address):
        return ip
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    # :: and ::1 sit in ::/96 too, but are IPv6's own unspecified and loopback addresses.
    if not (ip.is_unspecified or ip.is_loopback) and any(ip in net for net in _EMBEDS_IPV4):
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return ip


def _is_private(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    if isinstance(ip, ipaddress.IPv4Address):
        return ip in _CGNAT or any(ip in net for net in _RFC1918)
    return ip in _ULA

