"""Fixtures shared by every test package."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

Run = Callable[..., subprocess.CompletedProcess[str]]


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh LOBSTAH_HOME, set for this process and for the CLI subprocesses."""
    path = tmp_path / "lobstah-home"
    monkeypatch.setenv("LOBSTAH_HOME", str(path))
    for variable in ("LOBSTAH_IDENTITY", "LOBSTAH_LEDGER"):
        monkeypatch.delenv(variable, raising=False)
    return path


@pytest.fixture
def cli(home: Path) -> Run:
    """Run ``lobstah-core ARGS`` in a subprocess, as a user would, with LOBSTAH_HOME=home."""

    def run(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "lobstah_core", *args],
            input=stdin,
            capture_output=True,
            text=True,
            env={**os.environ, "LOBSTAH_HOME": str(home)},
            timeout=60,
        )

    return run
