"""The SSE decoder: events come out whole however the bytes are cut (field cases 03, 04, 14)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from lobstah_core.protocol.sse import SseDecoder

STREAM = (
    ": a comment\n\n"
    'data: {"a":"Bonjour"}\r\n\r\n'
    "event: message\nid: 7\nretry: 3000\ndata:{\"b\":\"monde\"}\n\n"
    "data: first line\ndata: second line\r\r"
    'data: {"c":"€ and 😀 split anywhere"}\n\n'
    "data: [DONE]\n\n"
).encode()
EVENTS = ['{"a":"Bonjour"}', '{"b":"monde"}', "first line\nsecond line", '{"c":"€ and 😀 split anywhere"}', "[DONE]"]


def decode(pieces: list[bytes]) -> list[str]:
    decoder = SseDecoder()
    return [data for piece in pieces for data in decoder.feed(piece)]


def test_whole_stream() -> None:
    assert decode([STREAM]) == EVENTS


def test_byte_by_byte() -> None:
    assert decode([STREAM[i : i + 1] for i in range(len(STREAM))]) == EVENTS


@given(st.lists(st.integers(min_value=0, max_value=len(STREAM)), max_size=12))
def test_any_cuts(cuts: list[int]) -> None:
    points = [0, *sorted(cuts), len(STREAM)]
    assert decode([STREAM[a:b] for a, b in zip(points, points[1:])]) == EVENTS


def test_an_event_of_megabytes_in_small_pieces() -> None:
    big = b"data: " + b"x" * 2_000_000 + b"\n\n"
    assert decode([big[i : i + 65_536] for i in range(0, len(big), 65_536)]) == ["x" * 2_000_000]


def test_an_unfinished_event_is_not_emitted() -> None:
    assert decode([b"data: {\"partial\":"]) == []
