from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest

from lobstah_core.ledger import Ledger
from lobstah_core.protocol import Identity

from ..conftest import Run
from ..factories import signed_receipt


def assert_clean_failure(result, message: str) -> None:
    """A failure is one readable line on stderr and a non-zero exit, never a traceback."""
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert message in result.stderr


def test_keygen_writes_a_private_js_format_identity(cli: Run, home: Path) -> None:
    result = cli("keygen")
    assert result.returncode == 0, result.stderr
    path = home / "identity.json"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    body = json.loads(path.read_text())
    assert set(body) == {"version", "publicKey", "secretKey"}
    assert body["publicKey"] in result.stdout
    assert Identity.from_json(path.read_text()).pubkey == body["publicKey"]


@pytest.mark.parametrize("args", [
    ("keygen",),
    ("peers", "add", "lob1" + "ab" * 32, "http://127.0.0.1:1", "--no-check"),
    ("ledger", "export"),
    ("ledger", "import", "-"),
])
def test_whichever_command_makes_the_home_makes_it_private(cli: Run, home: Path, args: tuple[str, ...]) -> None:
    """The home holds prompts and answers (jobs, batch files) and the ledger beside the
    identity. keygen made it 0700, but a borrower whose first command was `peers add` got a
    0755 home, and every store a router later wrote in it was readable by all local users."""
    assert cli(*args, stdin="").returncode == 0
    assert stat.S_IMODE(home.stat().st_mode) == 0o700


def test_keygen_never_overwrites_silently(cli: Run, home: Path) -> None:
    cli("keygen")
    before = (home / "identity.json").read_text()
    assert_clean_failure(cli("keygen"), "already exists")
    assert (home / "identity.json").read_text() == before
    forced = cli("keygen", "--force")
    assert forced.returncode == 0
    assert (home / "identity.json").read_text() != before
    backups = list(home.glob("identity.json.*.bak"))
    assert [b.read_text() for b in backups] == [before]


def test_whoami(cli: Run) -> None:
    assert_clean_failure(cli("whoami"), "lobstah-core keygen")
    cli("keygen")
    plain, as_json = cli("whoami"), cli("whoami", "--json")
    assert json.loads(as_json.stdout) == {"pubkey": plain.stdout.strip()}


def test_corrupt_identity_is_reported_and_left_alone(cli: Run, home: Path) -> None:
    home.mkdir()
    (home / "identity.json").write_text('{"version": 1, "secretKey": "nope"')
    for command in (("whoami",), ("balance",)):
        assert_clean_failure(cli(*command), "corrupt identity")
    assert_clean_failure(cli("keygen"), "already exists")
    assert (home / "identity.json").read_text() == '{"version": 1, "secretKey": "nope"'


def test_balance_json_has_the_router_shape(cli: Run, home: Path) -> None:
    cli("keygen")
    me = json.loads(cli("whoami", "--json").stdout)["pubkey"]
    worker = Identity.generate()
    with Ledger(home / "ledger.sqlite3") as ledger:
        ledger.add(signed_receipt(worker, me, inputTokens=300, outputTokens=200))
    body = json.loads(cli("balance", "--json").stdout)
    assert body == {
        "pubkey": me,
        "totals": {"earned": 500, "spent": 500, "receipts": 1},
        "self": {"pubkey": me, "earned": 0, "spent": 500, "net": -500, "allowance": 10000, "available": 9500},
    }
    assert "9,500" in cli("balance").stdout


def test_ledger_import_then_export(cli: Run, tmp_path: Path) -> None:
    worker, requester = Identity.generate(), Identity.generate()
    good = [signed_receipt(worker, requester) for _ in range(3)]
    jsonl = tmp_path / "ledger.jsonl"
    jsonl.write_text("\n".join([json.dumps(r.to_wire()) for r in good] + ["garbage", json.dumps(good[0].to_wire())]) + "\n")
    report = json.loads(cli("ledger", "import", str(jsonl), "--json").stdout)
    assert {k: report[k] for k in ("added", "duplicate", "invalid", "malformed")} == {
        "added": 3, "duplicate": 1, "invalid": 0, "malformed": 1,
    }
    assert report["problems"][0]["line"] == 4
    again = cli("ledger", "import", str(jsonl))
    assert "added 0, duplicate 4" in again.stdout

    exported = cli("ledger", "export").stdout.splitlines()
    assert [json.loads(line) for line in exported] == [r.to_wire() for r in good]
    target = tmp_path / "out.jsonl"
    result = cli("ledger", "export", str(target))
    assert "exported 3 receipts" in result.stderr
    assert target.read_text().splitlines() == exported


def test_ledger_import_from_stdin_and_bad_paths(cli: Run, tmp_path: Path) -> None:
    line = json.dumps(signed_receipt(Identity.generate(), "anonymous").to_wire())
    assert "added 1" in cli("ledger", "import", "-", stdin=line + "\n").stdout
    assert_clean_failure(cli("ledger", "import", str(tmp_path / "missing.jsonl")), "no such file")
    assert_clean_failure(cli("ledger", "export", str(tmp_path / "no-dir" / "x.jsonl")), "cannot write")


def test_usage_errors_exit_2(cli: Run) -> None:
    result = cli("frobnicate")
    assert result.returncode == 2 and "invalid choice" in result.stderr


def test_ledger_import_keeps_good_lines_beside_a_401_digit_number(cli: Run, home: Path, tmp_path: Path) -> None:
    worker, requester = Identity.generate(), Identity.generate()
    good = [json.dumps(signed_receipt(worker, requester).to_wire()) for _ in range(2)]
    poison = json.dumps(signed_receipt(worker, requester).to_wire()).replace('"outputTokens": 20', '"outputTokens": ' + "9" * 401)
    assert "9" * 401 in poison
    jsonl = tmp_path / "ledger.jsonl"
    jsonl.write_text("\n".join([good[0], poison, good[1]]) + "\n")
    result = cli("ledger", "import", str(jsonl))
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert "added 2, duplicate 0, invalid 0, malformed 1" in result.stdout
    assert "line 2: " in result.stdout
    with Ledger(home / "ledger.sqlite3") as ledger:
        assert ledger.totals().receipts == 2
