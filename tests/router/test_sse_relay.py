"""The stream relay: complete events pass at once, the receipt comment never reaches the client."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from lobstah_core.router.relay import SseRelay

STREAM = b'data: {"a":1}\n\ndata: {"b":2}\n\n:lobstah-receipt:eyJ4IjoxfQ==\n\ndata: [DONE]\n\n'
CLIENT_SEES = b'data: {"a":1}\n\ndata: {"b":2}\n\ndata: [DONE]\n\n'


def relay_all(pieces: list[bytes]) -> tuple[bytes, SseRelay]:
    relay = SseRelay()
    out = b"".join(relay.feed(piece) for piece in pieces) + relay.finish()
    return out, relay


def test_whole_stream() -> None:
    out, relay = relay_all([STREAM])
    assert out == CLIENT_SEES and relay.receipt == "eyJ4IjoxfQ=="


def test_partial_events_wait_for_their_end() -> None:
    relay = SseRelay()
    assert relay.feed(b'data: {"a"') == b""
    assert relay.feed(b":1}\n") == b""
    assert relay.feed(b"\ndata: x") == b'data: {"a":1}\n\n'


@given(st.lists(st.integers(min_value=0, max_value=len(STREAM)), max_size=12))
def test_any_split_gives_the_same_result(cuts: list[int]) -> None:
    points = sorted(set(cuts))
    pieces = [STREAM[a:b] for a, b in zip([0, *points], [*points, len(STREAM)], strict=True)]
    out, relay = relay_all(pieces)
    assert out == CLIENT_SEES and relay.receipt == "eyJ4IjoxfQ=="


def test_crlf_events() -> None:
    out, relay = relay_all([STREAM.replace(b"\n", b"\r\n")])
    assert relay.receipt == "eyJ4IjoxfQ=="
    assert b"lobstah-receipt" not in out and out.count(b"data:") == 3


def test_crlf_events_pass_byte_for_byte() -> None:
    out, _ = relay_all([STREAM.replace(b"\n", b"\r\n")])
    assert out == CLIENT_SEES.replace(b"\n", b"\r\n")


def test_the_mark_inside_an_event_is_content_not_a_receipt() -> None:
    quoted = b'data: {"content":":lobstah-receipt:not-mine"}\n\n'
    out, relay = relay_all([quoted + STREAM])
    assert out == quoted + CLIENT_SEES and relay.receipt == "eyJ4IjoxfQ=="


def test_an_unterminated_receipt_at_the_end_is_still_taken_out() -> None:
    out, relay = relay_all([b"data: [DONE]\n\n:lobstah-receipt:eyJ4IjoxfQ=="])
    assert out == b"data: [DONE]\n\n" and relay.receipt == "eyJ4IjoxfQ=="
