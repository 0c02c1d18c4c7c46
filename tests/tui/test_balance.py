"""The balance plot draws a long history at its own resolution without changing its shape."""

from __future__ import annotations

from lobstah_tui.widgets.balance import thinned


def test_a_long_history_keeps_one_point_per_dot_and_its_corners() -> None:
    # 300 receipts in the first second, then one a minute later: the flat stretch and the step
    # after it must survive, and no dot gets more than one point.
    x = [i / 300 for i in range(300)] + [60.0]
    kept = thinned(x, 68)
    assert kept[0] == 0 and kept[-2:] == [299, 300]
    assert len(kept) <= 69
    dots = [min(int(x[i] / 60.0 * 68), 67) for i in kept[1:]]
    assert len(dots) == len(set(dots))


def test_a_short_history_is_drawn_whole() -> None:
    assert thinned([0.0, 1.0, 2.0], 68) == [0, 1, 2]
    assert thinned([0.0, 1.0, 2.0, 3.0], 0) == [0, 1, 2, 3]  # no size yet
