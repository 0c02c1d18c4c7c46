"""Fixtures for protocol tests: golden vectors made by Node, and a live Node reference."""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

HERE = Path(__file__).parent
REFERENCE = HERE / "js" / "reference.mjs"

#: The interop tests need Node.js (the machines and CI have it); without it they say so.
requires_node = pytest.mark.skipif(shutil.which("node") is None, reason="needs node on PATH")


@pytest.fixture(scope="session")
def js_vectors() -> dict[str, Any]:
    """Vectors produced by `node tests/protocol/js/reference.mjs vectors` (committed)."""
    return json.loads((HERE / "golden" / "js_vectors.json").read_text(encoding="utf-8"))


class NodeLines:
    """A long-lived `node reference.mjs MODE` process answering one line per line."""

    def __init__(self, mode: str) -> None:
        self._process = subprocess.Popen(
            ["node", str(REFERENCE), mode],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            encoding="utf-8",
        )

    def ask(self, value: Any) -> str:
        # ensure_ascii keeps lone surrogates as \udxxx escapes that JSON.parse understands.
        assert self._process.stdin is not None and self._process.stdout is not None
        self._process.stdin.write(json.dumps(value, ensure_ascii=True) + "\n")
        self._process.stdin.flush()
        return self._process.stdout.readline().rstrip("\n")

    def close(self) -> None:
        assert self._process.stdin is not None
        self._process.stdin.close()
        self._process.wait(timeout=10)


@pytest.fixture(scope="session")
def node_canonical() -> Iterator[Callable[[Any], str]]:
    """canonicalize() as computed by Node (JSON.stringify over sorted keys)."""
    node = NodeLines("canonical")
    yield node.ask
    node.close()


@pytest.fixture(scope="session")
def node_verify() -> Iterator[Callable[[str, str, str], bool]]:
    """Ed25519 verification as done by Node's crypto: (pubkey, message, signature) -> ok."""
    node = NodeLines("verify")
    yield lambda pubkey, message, signature: node.ask(
        {"pubkey": pubkey, "message": message, "signature": signature}
    ) == "ok"
    node.close()
