"""The dashboard's screen: Textual's, except that a frame renders only the widgets it repaints.

Textual's compositor renders, for each frame, every widget whose *container* overlaps the
region that changed, not only those that overlap it themselves: when the receipts log scrolls
(30 times a second at 200 receipts/s), the peers table beside it, its scrollbars, the prompt and
the footer were all rendered again, only for their lines to be thrown away (about a fifth of the
dashboard's painting in bench/tui.py). What reaches the terminal is unchanged: the lines of a
widget that does not overlap the changed region were never written.
"""

from __future__ import annotations

import inspect
from collections.abc import Iterable

from textual._compositor import Compositor
from textual.geometry import Region
from textual.screen import Screen
from textual.strip import Strip
from textual.widget import Widget

__all__ = ["DashboardScreen"]


class _CroppingCompositor(Compositor):
    """A compositor whose renders skip widgets that lie outside the region being repainted.

    Textual's ``_get_renders(crop)`` reads ``visible_widgets`` once, first, and renders each
    widget whose clip overlaps ``crop``; here that one read answers only the widgets whose own
    visible part (region within clip) overlaps ``crop``. Every other read sees every widget.
    """

    def __init__(self) -> None:
        super().__init__()
        #: The region being repainted, until ``_get_renders`` has read the widgets.
        self._render_crop: Region | None = None

    @property
    def visible_widgets(self) -> dict[Widget, tuple[Region, Region]]:
        widgets = super().visible_widgets
        crop, self._render_crop = self._render_crop, None
        if crop is None:
            return widgets
        overlaps = crop.overlaps
        return {widget: (region, clip) for widget, (region, clip) in widgets.items()
                if overlaps(region.intersection(clip))}

    def _get_renders(self, crop: Region | None = None) -> Iterable[tuple[Region, Region, list[Strip]]]:
        self._render_crop = crop
        try:
            yield from super()._get_renders(crop)
        finally:
            self._render_crop = None  # never left for a read outside this render


def _compositor_as_expected() -> bool:
    """Whether this Textual's compositor has the private shape the cropping one relies on
    (checked against Textual 8.2): if a release changes it, the stock compositor is used."""
    try:
        parameters = list(inspect.signature(Compositor._get_renders).parameters)
    except (AttributeError, TypeError, ValueError):
        return False
    return parameters == ["self", "crop"] and isinstance(inspect.getattr_static(Compositor, "visible_widgets", None), property)


class DashboardScreen(Screen[None]):
    """Textual's ``Screen`` with :class:`_CroppingCompositor` (when this Textual's compositor has
    the shape it expects); it looks and behaves the same."""

    def __init__(self, name: str | None = None, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(name=name, id=id, classes=classes)
        if _COMPOSITOR_AS_EXPECTED and isinstance(getattr(self, "_compositor", None), Compositor):
            self._compositor = _CroppingCompositor()


_COMPOSITOR_AS_EXPECTED = _compositor_as_expected()
