"""Generated tokens' bytes → the text deltas a client may see, with OpenAI ``stop`` strings.

A model emits bytes, token by token, and two things keep some of them back for a while: a
UTF-8 character split across tokens (emoji, CJK) is held until complete, and text that could
be the start of a stop string is held until it is clear it is not. When a stop string appears,
the text before it is the last the client sees; the stop string itself is not returned
(OpenAI: "The returned text will not contain the stop sequence").
"""

from __future__ import annotations

import codecs
from collections.abc import Iterable

__all__ = ["TokenText"]


class TokenText:
    """Assembles one completion's text from token pieces (pure: no model, no I/O)."""

    def __init__(self, stop: Iterable[str] = ()) -> None:
        """
        Args:
            stop: the request's stop strings (empty ones are ignored).
        """
        self.stop = tuple(s for s in stop if s)
        #: True once a stop string was seen: generation should end.
        self.stopped = False
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._held = ""

    def feed(self, piece: bytes) -> str:
        """Add one token's bytes; returns the text that is now safe to send (maybe ``""``)."""
        if self.stopped:
            return ""
        return self._release(self._decoder.decode(piece))

    def finish(self) -> str:
        """The text still held when generation ended without a stop string."""
        if self.stopped:
            return ""
        text = self._held + self._decoder.decode(b"", final=True)
        self._held = ""
        return text

    def _release(self, text: str) -> str:
        held = self._held + text
        cut = min((i for i in (held.find(s) for s in self.stop) if i >= 0), default=-1)
        if cut >= 0:
            self.stopped, self._held = True, ""
            return held[:cut]
        keep = max((_overlap(held, s) for s in self.stop), default=0)
        self._held = held[len(held) - keep:]
        return held[: len(held) - keep]


def _overlap(text: str, stop: str) -> int:
    """Length of the longest end of ``text`` that is a proper start of ``stop``."""
    for size in range(min(len(text), len(stop) - 1), 0, -1):
        if stop.startswith(text[-size:]):
            return size
    return 0
