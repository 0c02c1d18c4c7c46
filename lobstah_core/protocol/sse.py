"""Server-sent events, decoded incrementally (the HTML Living Standard, "Parsing an event
stream"), for the data of OpenAI-style streams.

Pure: bytes in, each event's ``data`` out. Lines may end in LF, CRLF or CR; a ``data:`` field
may or may not have its space; comments (``:``), ``event``, ``id`` and ``retry`` fields are
ignored; several ``data`` lines of one event join with LF. No line or event is too long: the
buffer grows as needed (a whole tool call may come in one event of megabytes).
"""

from __future__ import annotations

__all__ = ["SseDecoder"]


class SseDecoder:
    """Feed bytes as they arrive; get the ``data`` of every event completed by them."""

    def __init__(self) -> None:
        self._pending = b""
        self._data: list[str] = []

    def feed(self, chunk: bytes) -> list[str]:
        """The data of the events completed by ``chunk`` (UTF-8, split characters waited for)."""
        buffer = self._pending + chunk
        events: list[str] = []
        start = 0
        while True:
            end = _line_end(buffer, start)
            if end is None:
                break
            if buffer[end:end + 1] == b"\r" and end + 1 == len(buffer):
                break  # a CR at the very end may be half of a CRLF: wait for the next chunk
            line = buffer[start:end]
            start = end + (2 if buffer[end:end + 2] == b"\r\n" else 1)
            self._line(line, events)
        self._pending = buffer[start:]
        return events

    def _line(self, line: bytes, events: list[str]) -> None:
        if not line:
            if self._data:
                events.append("\n".join(self._data))
                self._data = []
            return
        if line.startswith(b":"):
            return
        name, _, value = line.partition(b":")
        if name == b"data":
            text = value.decode("utf-8", "replace")
            self._data.append(text[1:] if text.startswith(" ") else text)


def _line_end(buffer: bytes, start: int) -> int | None:
    """Index of the first CR or LF at or after ``start``, or ``None``."""
    lf, cr = buffer.find(b"\n", start), buffer.find(b"\r", start)
    found = [i for i in (lf, cr) if i >= 0]
    return min(found) if found else None
