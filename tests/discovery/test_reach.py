"""A worker announced under a URL that cannot reach the address it listens on is reported."""

from __future__ import annotations

import pytest

from lobstah_core.discovery.reach import bind_warning

from ..conftest import Run


@pytest.mark.parametrize("bind, url", [
    ("127.0.0.1", "http://my-host:17474"),
    ("127.0.0.1", "http://203.0.113.5:17474"),
    ("::1", "http://[2001:db8::1]:17474"),
    ("localhost", "https://mini.tailnet.ts.net"),
])
def test_loopback_bind_announced_elsewhere(bind: str, url: str) -> None:
    warning = bind_warning(bind, url)
    assert warning is not None and "--host 0.0.0.0" in warning and url in warning


@pytest.mark.parametrize("bind, url", [
    ("0.0.0.0", "http://my-host:17474"),
    ("192.168.1.20", "http://my-host:17474"),
    ("127.0.0.1", "http://127.0.0.1:17474"),
    ("127.0.0.1", "http://localhost:17474"),
])
def test_reachable_or_unknowable(bind: str, url: str) -> None:
    assert bind_warning(bind, url) is None


def test_serve_warns_and_binds_where_told(cli: Run) -> None:
    args = ("serve", "--engine", "demo", "--router-port", "0", "--worker-port", "0", "--seconds", "0.5",
            "--announce-to", "http://127.0.0.1:9", "--announce-url", "http://203.0.113.5:17474")
    warned = cli(*args)
    assert warned.returncode == 0, warned.stderr
    assert "peers cannot reach http://203.0.113.5:17474" in warned.stderr
    bound = cli(*args, "--host", "0.0.0.0")
    assert bound.returncode == 0, bound.stderr
    assert "peers cannot reach" not in bound.stderr
    assert "worker     http://0.0.0.0:" in bound.stdout
