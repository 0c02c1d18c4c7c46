"""Lines of the receipts panel for the events that need one."""

from __future__ import annotations

from lobstah_core.events import ReceiptAccepted, ReceiptsRecovered
from lobstah_tui.widgets.receipts import describe_receipt

PEER = "lob1" + "ab" * 32


def test_receipts_recovered_by_reconciliation_say_how_many_from_whom() -> None:
    line = describe_receipt(ReceiptsRecovered(1_795_000_000_000, PEER, 3), {PEER: "attic"})
    assert line is not None and "recovered" in line and "attic" in line and "3 receipt(s)" in line


def test_names_are_shown_as_they_are_not_read_as_markup() -> None:
    line = describe_receipt(ReceiptAccepted(1_795_000_000_000, PEER, "llama[q4]", 12, 34, "n" * 32), {PEER: "[b]rack"})
    assert line is not None and "llama[q4]" in line and "[b]rack" in line and "12+34" in line
