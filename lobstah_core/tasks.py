"""Running the servers' event loop, and background-task housekeeping shared by the servers
and switches."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Coroutine
from typing import Any, TypeVar

__all__ = ["cancel_and_wait", "run"]

T = TypeVar("T")


def run(main: Coroutine[Any, Any, T]) -> T:
    """``asyncio.run(main)``, on uvloop's event loop where uvloop is installed (a dependency on
    Linux and macOS), else on asyncio's own.

    The command line's servers run here. libuv's loop does the same asyncio work in less of
    the interpreter's time: about 0.15-0.25 ms less added latency per request through the
    router on a 2-core machine (README, "Benchmarks"). The dashboard keeps Textual's loop.
    """
    try:
        import uvloop
    except ImportError:
        return asyncio.run(main)
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(main)


async def cancel_and_wait(task: asyncio.Task[object] | None) -> None:
    """Cancel ``task`` (if any) and wait until it has finished unwinding."""
    if task is None:
        return
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
