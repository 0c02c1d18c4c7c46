"""The idle limit of a body read piece by piece (``lobstah_core.timeouts.idle_chunks``)."""

from __future__ import annotations

import asyncio

import pytest

from lobstah_core.timeouts import PhaseTimeout, Timeouts, idle_chunks

LIMIT = Timeouts(idle_s=0.1)


def pieces(*delays_s: float):
    """A ``read`` that returns b"x" after each delay in turn, then b"" (the end)."""
    queue = list(delays_s)

    async def read() -> bytes:
        if not queue:
            return b""
        await asyncio.sleep(queue.pop(0))
        return b"x"

    return read


async def test_a_silence_past_the_limit_is_an_idle_timeout_and_leaves_the_task_usable() -> None:
    got = []
    with pytest.raises(PhaseTimeout) as raised:
        async for piece in idle_chunks(pieces(0.0, 0.0, 5.0), LIMIT):
            got.append(piece)
    assert (raised.value.phase, got) == ("idle", [b"x", b"x"])
    await asyncio.sleep(0.01)  # the timeout's cancellation was taken back: nothing is pending
    assert asyncio.current_task().cancelling() == 0


async def test_only_the_wait_for_the_peer_counts_not_the_consumer_s_own_time() -> None:
    # Each piece comes at once, but the consumer (a slow client, say) takes 3x the limit.
    got = []
    async for piece in idle_chunks(pieces(0.0, 0.0, 0.0), LIMIT):
        got.append(piece)
        await asyncio.sleep(0.3)
    assert got == [b"x"] * 3


async def test_a_steady_body_longer_than_the_limit_in_all_is_never_cut() -> None:
    got = [piece async for piece in idle_chunks(pieces(*[0.05] * 8), LIMIT)]
    assert got == [b"x"] * 8  # 0.4 s in all, four times the limit


async def test_the_client_leaving_is_a_cancellation_not_a_timeout() -> None:
    async def consume() -> None:
        async for _ in idle_chunks(pieces(5.0), Timeouts(idle_s=0.05)):
            pass

    task = asyncio.create_task(consume())
    await asyncio.sleep(0.01)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def test_a_cancellation_racing_the_timeout_stays_a_cancellation() -> None:
    # The timeout fires and someone else cancels too: the outer cancel must not be swallowed.
    async def consume() -> None:
        async for _ in idle_chunks(pieces(5.0), Timeouts(idle_s=0.05)):
            pass

    task = asyncio.create_task(consume())
    await asyncio.sleep(0.049)
    task.cancel()
    await asyncio.sleep(0.01)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
