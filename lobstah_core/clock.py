"""The wall clock, in the grid's unit: integer milliseconds since the epoch.

Servers take a ``clock_ms`` callable defaulting to this, so tests can move time by hand.
"""

from __future__ import annotations

import time

__all__ = ["wall_clock_ms"]


def wall_clock_ms() -> int:
    return time.time_ns() // 1_000_000
