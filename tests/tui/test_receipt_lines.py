"""Lines of the receipts panel for the events that need one."""

from __future__ import annotations

from lobstah_core.events import ReceiptsRecovered
from lobstah_tui.widgets.receipts import describe_receipt

PEER = "lob1" + "ab" * 32


def test_receipts_recovered_by_reconciliation_say_how_many_from_whom() -> None:
    line = describe_receipt(ReceiptsRecovered(1_795_000_000_000, PEER, 3), {PEER: "attic"})
    assert line is not None and "recovered" in line and "attic" in line and "3 receipt(s)" in line
