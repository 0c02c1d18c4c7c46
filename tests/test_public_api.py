"""The public surface and the layering of the packages."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import lobstah_core.protocol as protocol


def test_protocol_exports_are_exact() -> None:
    required = {"canonicalize", "Identity", "sign_receipt", "verify_receipt", "sign_announcement", "verify_announcement"}
    assert required <= set(protocol.__all__)
    assert sorted(protocol.__all__) == sorted(
        name for name in dir(protocol) if not name.startswith("_") and not _is_submodule(name)
    )


def _is_submodule(name: str) -> bool:
    return type(getattr(protocol, name)).__name__ == "module"


def test_core_never_imports_the_tui_stack() -> None:
    core = Path(protocol.__file__).parent.parent
    for module in core.rglob("*.py"):
        assert not _imports(module) & {"textual", "rich", "lobstah_tui"}, module


def test_core_never_loads_the_tui_stack() -> None:
    # httpx imports rich for its own CLI whenever rich is installed, so modules that use httpx
    # (the Ollama engine) load it indirectly; everything else must not.
    code = (
        "import sys, lobstah_core, lobstah_core.protocol, lobstah_core.ledger, lobstah_core.cli,"
        " lobstah_core.worker;"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('textual', 'rich', 'lobstah_tui')))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"


def test_protocol_is_pure() -> None:
    # The wire format package takes clocks as arguments and never touches sockets or files.
    forbidden = {"socket", "sqlite3", "aiohttp", "httpx", "asyncio", "ollama", "os", "pathlib", "io", "time", "datetime"}
    for module in Path(protocol.__file__).parent.glob("*.py"):
        used = _imports(module) & forbidden
        assert not used, f"{module.name} imports {used}"


def _imports(module: Path) -> set[str]:
    """Top-level names of the absolute imports in ``module``."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(module.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names
