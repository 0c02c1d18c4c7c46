"""Canonical JSON must be byte-identical to what the JavaScript nodes sign."""

from __future__ import annotations

import json
import math
import re
import subprocess
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lobstah_core.errors import MalformedMessage
from lobstah_core.protocol import canonical_bytes, canonicalize

from .conftest import REFERENCE, requires_node

# Each case is a rule of WIRE.md with the text JavaScript produces for it.
GOLDEN = [
    ({"b": 1, "a": 2}, '{"a":2,"b":1}'),
    ({"z": {"y": 1, "x": [3, {"d": 1, "c": 2}]}}, '{"z":{"x":[3,{"c":2,"d":1}],"y":1}}'),
    # UTF-16 code units: the emoji (U+1F600 = D83D DE00) sorts before U+FF61.
    ({"\uff61": 1, "\U0001f600": 2}, '{"\U0001f600":2,"\uff61":1}'),
    ({"B": 1, "a": 2, "_": 3}, '{"B":1,"_":3,"a":2}'),
    # Array-index keys come first, numerically, as JS property order demands.
    ({"b": 1, "10": 2, "9": 3, "01": 4}, '{"9":3,"10":2,"01":4,"b":1}'),
    ("line\nbreak\ttab\x08\x0c\r", '"line\\nbreak\\ttab\\b\\f\\r"'),
    ('quote " backslash \\', '"quote \\" backslash \\\\"'),
    ("\x00\x1f\x7f", '"\\u0000\\u001f\x7f"'),
    ("\u2028\u2029é🦞", '"\u2028\u2029é🦞"'),
    ("lone \ud800 surrogate", '"lone \\ud800 surrogate"'),
    ("\ud83d\ude00", '"😀"'),  # a pair held as two chars is one character in JS
    (1.0, "1"),
    (-0.0, "0"),
    (1e16, "10000000000000000"),
    (1e21, "1e+21"),
    (1.5e-7, "1.5e-7"),
    (0.000001, "0.000001"),
    (123456789.125, "123456789.125"),
    (0.1 + 0.2, "0.30000000000000004"),
    (-2.5e-300, "-2.5e-300"),
    (2**53 - 1, "9007199254740991"),
    # Larger integers have no exact JS value: refused, see test_bounds.py.
    (math.inf, "null"),
    (math.nan, "null"),
    ([True, False, None], "[true,false,null]"),
    ([], "[]"),
    ({}, "{}"),
]


@pytest.mark.parametrize(("value", "expected"), GOLDEN)
def test_matches_javascript_rules(value: Any, expected: str) -> None:
    assert canonicalize(value) == expected


def test_signed_bytes_are_utf8() -> None:
    assert canonical_bytes({"k": "é"}) == b'{"k":"\xc3\xa9"}'


@pytest.mark.parametrize("bad", [{1: "x"}, {"a": {1, 2}}, b"bytes", object()])
def test_refuses_values_json_cannot_hold(bad: Any) -> None:
    with pytest.raises(MalformedMessage):
        canonicalize(bad)


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**53) + 1, max_value=2**53 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda children: st.lists(children, max_size=5)
    | st.dictionaries(st.text(max_size=8), children, max_size=5),
    max_leaves=20,
)


@given(json_values)
def test_parses_back_to_the_same_value(value: Any) -> None:
    text = canonicalize(value)
    # Lone surrogates are escaped, so every canonical text is valid UTF-8.
    text.encode("utf-8")
    # Every JS number is a double: read integers back as doubles too, as JSON.parse would.
    assert json.loads(text, parse_int=float) == _normalise(value)


@given(st.dictionaries(st.text(), st.integers(min_value=0, max_value=2**53 - 1), min_size=2, max_size=8))
def test_keys_are_in_javascript_order(obj: dict[str, int]) -> None:
    keys = list(json.loads(canonicalize(obj)))
    count = sum(map(_is_array_index, keys))
    indices, rest = keys[:count], keys[count:]
    assert all(map(_is_array_index, indices))
    assert indices == sorted(indices, key=int)
    assert rest == sorted(rest, key=lambda k: k.encode("utf-16-be", "surrogatepass"))


@requires_node
@settings(max_examples=300, deadline=None)
@given(json_values)
def test_byte_identical_to_node(node_canonical: Any, value: Any) -> None:
    assert canonicalize(value) == node_canonical(value)


# Flat objects (receipts, announcements) take a shorter path; these reach its every exit:
# ASCII or not, digit-led keys, surrogates, integers at and beyond the safe range, floats.
flat_objects = st.dictionaries(
    st.text(max_size=6) | st.sampled_from(["0", "7", "10", "01", "a", "Z", "_", "\x01"]),
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**53) - 2, max_value=2**53 + 2)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text()
    | st.sampled_from(["lone \ud800", "\ud83d\ude00", "é🦞\u2028"]),
    max_size=8,
)


@given(flat_objects)
def test_flat_objects_read_as_when_nested(obj: dict[str, Any]) -> None:
    # Nested one level down, the object goes the general way: both ways agree, refusals too.
    try:
        flat = canonicalize(obj)
    except MalformedMessage as exc:
        with pytest.raises(MalformedMessage, match=re.escape(exc.message)):
            canonicalize({"k": obj})
    else:
        assert canonicalize({"k": obj}) == '{"k":' + flat + "}"


@requires_node
@settings(max_examples=300, deadline=None)
@given(flat_objects.map(lambda obj: {k: v for k, v in obj.items() if abs(v if isinstance(v, int) else 0) < 2**53}))
def test_flat_objects_byte_identical_to_node(node_canonical: Any, obj: dict[str, Any]) -> None:
    assert canonicalize(obj) == node_canonical(obj)


@requires_node
def test_reference_script_is_the_one_that_made_the_vectors(js_vectors: dict[str, Any]) -> None:
    fresh = subprocess.run(
        ["node", str(REFERENCE), "vectors"], capture_output=True, text=True, check=True
    )
    assert json.loads(fresh.stdout) == js_vectors


def _is_array_index(key: str) -> bool:
    return key.isascii() and key.isdigit() and str(int(key)) == key and int(key) < 2**32 - 1


def _normalise(value: Any) -> Any:
    """What JSON.parse(JSON.stringify(value)) gives: -0 -> 0, surrogate pairs joined."""
    if isinstance(value, str):
        return value.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "surrogatepass")
    if isinstance(value, float) and value == 0:
        return 0
    if isinstance(value, list):
        return [_normalise(item) for item in value]
    if isinstance(value, dict):
        return {_normalise(k): _normalise(v) for k, v in value.items()}
    return value
