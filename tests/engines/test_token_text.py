"""Token bytes → client text: stop strings across tokens, UTF-8 split across tokens."""

from __future__ import annotations

from lobstah_core.engines.token_text import TokenText


def _run(pieces: list[bytes], stop: tuple[str, ...] = ()) -> tuple[list[str], bool]:
    text = TokenText(stop)
    deltas = [text.feed(piece) for piece in pieces]
    return [*deltas, text.finish()], text.stopped


def test_a_stop_string_split_across_tokens_ends_the_text_before_it() -> None:
    deltas, stopped = _run([b"Paris", b" is", b" nice", b"\n\n", b"User", b":"], stop=("\n\nUser:",))
    assert "".join(deltas) == "Paris is nice" and stopped


def test_text_that_only_looked_like_a_stop_string_is_released() -> None:
    deltas, stopped = _run([b"one", b"\n", b"two"], stop=("\n\n",))
    assert not stopped and "".join(deltas) == "one\ntwo"
    assert deltas[1] == "" and deltas[2] == "\ntwo"  # held while it could start "\n\n"


def test_nothing_after_the_stop_string_is_sent() -> None:
    text = TokenText(["."])
    assert text.feed(b"Yes. And") == "Yes"
    assert text.feed(b" more") == "" and text.finish() == ""


def test_a_character_split_across_tokens_arrives_whole() -> None:
    lobster = "🦞".encode()
    deltas, _ = _run([b"a ", lobster[:2], lobster[2:], b"!"])
    assert deltas == ["a ", "", "🦞", "!", ""]


def test_an_unfinished_character_at_the_end_becomes_a_replacement_character() -> None:
    deltas, _ = _run([b"x", "é".encode()[:1]])
    assert "".join(deltas) == "x\ufffd"


def test_empty_stop_strings_are_ignored() -> None:
    deltas, stopped = _run([b"abc"], stop=("",))
    assert "".join(deltas) == "abc" and not stopped
