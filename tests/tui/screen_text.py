"""The text a user sees on the screen, read from Textual's SVG screenshot (rows top to bottom)."""

from __future__ import annotations

import html
import re

from textual.app import App

_CELL = re.compile(r'<text class="[^"]*" x="([\d.]+)" y="([\d.]+)"[^>]*>([^<]*)</text>')


def screen_rows(app: App[object]) -> list[str]:
    """Each row of the screen as text (styles dropped, blank cells closed up)."""
    rows: dict[float, list[tuple[float, str]]] = {}
    for x, y, text in _CELL.findall(app.export_screenshot()):
        rows.setdefault(float(y), []).append((float(x), html.unescape(text).replace("\xa0", " ")))
    return ["".join(text for _, text in sorted(cells)) for _, cells in sorted(rows.items())]
