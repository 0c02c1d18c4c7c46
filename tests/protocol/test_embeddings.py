"""OpenAI's embeddings wire shapes: base64 float32 vectors and the request schema."""

from __future__ import annotations

import pytest

from lobstah_core.errors import RequestError
from lobstah_core.http import parse_body
from lobstah_core.protocol.embeddings import decode_base64, embedding_response, encode_base64
from lobstah_core.protocol.schemas import EmbeddingRequest


def test_base64_is_little_endian_float32() -> None:
    # Golden: numpy.array([1.0, -2.0], dtype="<f4").tobytes() in base64, as the openai SDK decodes it.
    assert encode_base64([1.0, -2.0]) == "AACAPwAAAMA="
    assert decode_base64("AACAPwAAAMA=") == [1.0, -2.0]
    with pytest.raises(ValueError):
        decode_base64("AACA")


def test_response_shape_in_both_formats() -> None:
    plain = embedding_response("m", [[0.5], [0.25]], 7)
    assert plain["data"][1] == {"object": "embedding", "index": 1, "embedding": [0.25]}
    assert plain["usage"] == {"prompt_tokens": 7, "total_tokens": 7}
    assert embedding_response("m", [[0.5]], 1, "base64")["data"][0]["embedding"] == encode_base64([0.5])


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b'{"model": "m", "input": [1, 2, 3]}', "token arrays are not supported"),
        (b'{"model": "m", "input": []}', "input"),
        (b'{"model": "m", "input": "x", "encoding_format": "int8"}', "encoding_format"),
        (b'{"model": "m", "input": "x", "dimensions": 0}', "dimensions"),
        (b'{"input": "x"}', "model"),
    ],
)
def test_bad_requests_name_the_field(body: bytes, message: str) -> None:
    with pytest.raises(RequestError, match=message):
        parse_body(body, EmbeddingRequest)


def test_one_text_or_many() -> None:
    assert parse_body(b'{"model": "m", "input": "a"}', EmbeddingRequest).texts == ["a"]
    assert parse_body(b'{"model": "m", "input": ["a", "b"], "user": "u"}', EmbeddingRequest).texts == ["a", "b"]
