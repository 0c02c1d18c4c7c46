"""The node's contract, written once: one peer row and its wire form, one chat-stream parser."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from lobstah_core.errors import LobstahError
from lobstah_core.node_view import PeerView, chat_stream_text

ROW = PeerView("lob1" + "a1" * 32, "swift", "http://192.0.2.5:17474", "tracker", ("demo-fast",), "interactive",
               "excluded", 1_795_000_017_000, 2, 0, 1, 212.0, 300.5, "connection reset", None, 1_795_000_300_000)


def test_a_peer_row_survives_its_wire_form() -> None:
    assert PeerView.from_wire(ROW.to_wire()) == ROW


def test_a_js_routers_plain_peer_entry_reads_as_healthy() -> None:
    view = PeerView.from_wire({"pubkey": ROW.pubkey, "url": ROW.url})
    assert (view.state, view.label, view.models, view.source) == ("healthy", None, (), "manual")


async def lines(*items: str) -> AsyncIterator[str]:
    for item in items:
        yield item


async def test_the_stream_parser_yields_text_and_skips_comments() -> None:
    stream = lines('data: {"choices":[{"delta":{"content":"hel"}}]}', "", ": keep-alive",
                   'data: {"choices":[{"delta":{"content":"lo"}}]}', "data: [DONE]")
    assert [piece async for piece in chat_stream_text(stream)] == ["hel", "lo"]


async def test_an_error_inside_the_stream_is_raised_not_dropped() -> None:
    stream = lines('data: {"choices":[{"delta":{"content":"hel"}}]}', 'data: {"error":{"type":"peer_failed","message":"the worker went away"}}',
                   "data: [DONE]")
    received: list[str] = []
    with pytest.raises(LobstahError, match="the worker went away"):
        async for piece in chat_stream_text(stream):
            received.append(piece)
    assert received == ["hel"]
