"""OpenAI's embeddings response (``POST /v1/embeddings``), pure: vectors in, JSON out.

Shape (OpenAI API reference, "Embeddings"): ``{"object": "list", "data": [{"object":
"embedding", "index": i, "embedding": ...}], "model", "usage": {"prompt_tokens",
"total_tokens"}}``. With ``encoding_format: "base64"`` each embedding is the standard base64 of
its float32 values, little-endian (what the ``openai`` SDK asks for by default and decodes).
"""

from __future__ import annotations

import base64
import struct
from collections.abc import Sequence
from typing import Any, Literal

__all__ = ["EncodingFormat", "embedding_response", "encode_base64", "decode_base64"]

EncodingFormat = Literal["float", "base64"]


def encode_base64(vector: Sequence[float]) -> str:
    """``vector`` as base64 of little-endian float32 values (OpenAI's ``base64`` format)."""
    return base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode("ascii")


def decode_base64(text: str) -> list[float]:
    """The floats of an OpenAI ``base64`` embedding.

    Raises:
        ValueError: not base64, or not a whole number of float32 values.
    """
    raw = base64.b64decode(text, validate=True)
    if len(raw) % 4:
        raise ValueError("a base64 embedding must hold whole float32 values (4 bytes each)")
    return list(struct.unpack(f"<{len(raw) // 4}f", raw))


def embedding_response(
    model: str, vectors: Sequence[Sequence[float]], prompt_tokens: int, encoding_format: EncodingFormat = "float"
) -> dict[str, Any]:
    """The OpenAI embeddings list for ``vectors`` (one per input, in input order)."""
    data = [
        {
            "object": "embedding",
            "index": index,
            "embedding": encode_base64(vector) if encoding_format == "base64" else list(vector),
        }
        for index, vector in enumerate(vectors)
    ]
    usage = {"prompt_tokens": prompt_tokens, "total_tokens": prompt_tokens}
    return {"object": "list", "data": data, "model": model, "usage": usage}
