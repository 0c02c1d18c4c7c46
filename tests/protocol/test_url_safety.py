from __future__ import annotations

import pytest

from lobstah_core.errors import UnsafeUrl
from lobstah_core.protocol import UrlPolicy, check_peer_url, peer_url_host

DEFAULT = UrlPolicy()
LOOPBACK_OK = UrlPolicy(allow_loopback=True)
STRICT = UrlPolicy(block_private=True)


@pytest.mark.parametrize(
    ("address", "policy"),
    [
        ("169.254.169.254", LOOPBACK_OK),  # cloud metadata: refused always
        ("fe80::1", LOOPBACK_OK),
        ("0.0.0.0", DEFAULT),
        ("::", DEFAULT),
        ("127.0.0.1", DEFAULT),
        ("::1", DEFAULT),
        ("::ffff:127.0.0.1", DEFAULT),
        ("::ffff:169.254.169.254", LOOPBACK_OK),
        ("10.1.2.3", STRICT),
        ("172.20.0.1", STRICT),
        ("192.168.1.10", STRICT),
        ("100.100.1.1", STRICT),
        ("fd00::5", STRICT),
        ("224.0.0.1", DEFAULT),
    ],
)
def test_refused_addresses(address: str, policy: UrlPolicy) -> None:
    with pytest.raises(UnsafeUrl):
        check_peer_url("http://peer.example:17474", [address], policy)


@pytest.mark.parametrize(
    ("address", "policy"),
    [
        ("203.0.113.5", DEFAULT),
        ("203.0.113.5", STRICT),
        ("192.168.1.10", DEFAULT),  # private ranges pass unless asked to block them
        ("100.100.1.1", DEFAULT),
        ("127.0.0.1", LOOPBACK_OK),
        ("::1", LOOPBACK_OK),
        ("2001:db8::1", STRICT),
    ],
)
def test_allowed_addresses(address: str, policy: UrlPolicy) -> None:
    check_peer_url("https://peer.example", [address], policy)


def test_one_bad_address_spoils_the_host() -> None:
    with pytest.raises(UnsafeUrl, match="169.254"):
        check_peer_url("http://peer.example", ["203.0.113.5", "169.254.169.254"], LOOPBACK_OK)


@pytest.mark.parametrize(
    "url",
    ["ftp://peer.example", "file:///etc/passwd", "http://", "peer.example:17474", "http://u:p@peer.example", "http://peer.example:99999"],
)
def test_refused_urls(url: str) -> None:
    with pytest.raises(UnsafeUrl):
        peer_url_host(url)


def test_host_and_unresolvable() -> None:
    assert peer_url_host("http://[::1]:17474/x") == "::1"
    with pytest.raises(UnsafeUrl, match="no address"):
        check_peer_url("http://peer.example", [], DEFAULT)


def test_policy_from_environment() -> None:
    assert UrlPolicy.from_env({}) == DEFAULT
    env = {"LOBSTAH_ALLOW_LOOPBACK": "1", "LOBSTAH_BLOCK_PRIVATE_ADDRS": "true"}
    assert UrlPolicy.from_env(env) == UrlPolicy(allow_loopback=True, block_private=True)


@pytest.mark.parametrize("policy", [DEFAULT, LOOPBACK_OK, STRICT], ids=["default", "loopback-ok", "strict"])
@pytest.mark.parametrize(
    "address",
    [
        "fd00:ec2::254",  # AWS metadata over IPv6: ULA, yet refused without block_private
        "100.100.100.200",  # Alibaba Cloud metadata: CGNAT, likewise
        "::ffff:100.100.100.200",
        "::169.254.169.254",  # IPv4-compatible form of the link-local metadata address
        "64:ff9b::a9fe:a9fe",  # NAT64 form of 169.254.169.254
        "64:ff9b::6464:64c8",  # NAT64 form of 100.100.100.200
        "::0.0.0.0",
    ],
)
def test_metadata_and_embedded_forms_are_refused_whatever_the_policy(address: str, policy: UrlPolicy) -> None:
    with pytest.raises(UnsafeUrl):
        check_peer_url("http://peer.example", [address], policy)


@pytest.mark.parametrize(
    ("address", "refused_by"),
    [
        ("::127.0.0.1", DEFAULT),
        ("64:ff9b::7f00:1", DEFAULT),
        ("64:ff9b::c0a8:10a", STRICT),  # 192.168.1.10
        ("::10.1.2.3", STRICT),
    ],
)
def test_embedded_ipv4_is_judged_as_that_address(address: str, refused_by: UrlPolicy) -> None:
    with pytest.raises(UnsafeUrl):
        check_peer_url("http://peer.example", [address], refused_by)
    check_peer_url("http://peer.example", [address], UrlPolicy(allow_loopback=True))


def test_embedded_public_ipv4_passes() -> None:
    check_peer_url("http://peer.example", ["64:ff9b::cb00:7105"], STRICT)  # 203.0.113.5 via NAT64
