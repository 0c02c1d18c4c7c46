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


def test_core_never_loads_the_tui_stack() -> None:
    code = (
        "import sys, lobstah_core, lobstah_core.protocol, lobstah_core.ledger, lobstah_core.cli;"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('textual', 'rich', 'lobstah_tui')))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"


def test_protocol_is_pure() -> None:
    # The wire format package takes clocks as arguments and never touches sockets or files.
    forbidden = {"socket", "sqlite3", "aiohttp", "httpx", "asyncio", "ollama", "os", "pathlib", "io", "time", "datetime"}
    package = Path(protocol.__file__).parent
    for module in package.glob("*.py"):
        tree = ast.parse(module.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            used = {name.split(".")[0] for name in names} & forbidden
            assert not used, f"{module.name} imports {used}"
