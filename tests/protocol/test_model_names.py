"""Model names: a name without a tag is the ``:latest`` one, as for Ollama."""

from __future__ import annotations

import pytest

from lobstah_core.protocol.model_names import find_model, lists_model, with_tag


@pytest.mark.parametrize(
    ("name", "tagged"),
    [
        ("llama3.2", "llama3.2:latest"),
        ("llama3.2:3b", "llama3.2:3b"),
        ("llama3.2:latest", "llama3.2:latest"),
        ("library/qwen2.5", "library/qwen2.5:latest"),
        ("hf.co/bartowski/Llama-3.2-1B-Instruct-GGUF:Q4_K_M", "hf.co/bartowski/Llama-3.2-1B-Instruct-GGUF:Q4_K_M"),
        ("registry.local:5000/team/model", "registry.local:5000/team/model:latest"),
    ],
)
def test_with_tag(name: str, tagged: str) -> None:
    assert with_tag(name) == tagged


def test_a_bare_name_is_the_latest_tag_only() -> None:
    offered = ["llama3.2:latest", "qwen2.5:7b", "demo-fast"]
    assert lists_model(offered, "llama3.2") and lists_model(offered, "llama3.2:latest")
    assert lists_model(offered, "demo-fast") and lists_model(offered, "demo-fast:latest")
    assert lists_model(offered, "qwen2.5:7b")
    assert not lists_model(offered, "qwen2.5")  # only :7b is here, not :latest
    assert not lists_model(offered, "llama3.2:3b")
    assert not lists_model(offered, "llama3")
    assert not lists_model([], "llama3.2")


def test_find_model_gives_the_name_as_offered() -> None:
    offered = ["llama3.2:latest", "demo-fast"]
    assert find_model(offered, "llama3.2") == "llama3.2:latest"
    assert find_model(offered, "demo-fast:latest") == "demo-fast"
    assert find_model(offered, "llama3.2:1b") is None
