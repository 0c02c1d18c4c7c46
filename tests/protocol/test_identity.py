from __future__ import annotations

import json
from typing import Any

import pytest

from lobstah_core.errors import IdentityError, InvalidSignature, MalformedMessage
from lobstah_core.protocol import Identity, is_pubkey, verify_signature

# RFC 8032, section 7.1, test 1: an Ed25519 vector independent of any Lobstah code.
RFC_SEED = "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60"
RFC_PUBLIC = "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a"
RFC_SIGNATURE = (
    "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b"
)


def test_rfc8032_vector() -> None:
    identity = Identity.from_seed(bytes.fromhex(RFC_SEED))
    assert identity.pubkey == "lob1" + RFC_PUBLIC
    assert identity.sign_hex(b"") == RFC_SIGNATURE
    verify_signature(identity.pubkey, b"", RFC_SIGNATURE)


def test_matches_javascript_pubkey(js_vectors: dict) -> None:
    identity = Identity.from_seed(bytes.fromhex(js_vectors["workerSeed"]))
    assert identity.pubkey == js_vectors["workerPubkey"]


def test_generated_identities_differ_and_verify() -> None:
    first, second = Identity.generate(), Identity.generate()
    assert first.pubkey != second.pubkey and is_pubkey(first.pubkey)
    signature = first.sign_hex(b"hello")
    first.verify(b"hello", signature)
    with pytest.raises(InvalidSignature):
        second.verify(b"hello", signature)
    with pytest.raises(InvalidSignature):
        first.verify(b"hellO", signature)


def test_json_round_trip_in_js_format_keeps_unknown_fields() -> None:
    identity = Identity.from_seed(bytes.fromhex(RFC_SEED))
    text = json.dumps({**json.loads(identity.to_json()), "nostrSecretKey": "ab" * 32})
    again = Identity.from_json(text)
    assert again.pubkey == identity.pubkey
    body = json.loads(again.to_json())
    assert body == {
        "version": 1,
        "publicKey": identity.pubkey,
        "secretKey": RFC_SEED,
        "nostrSecretKey": "ab" * 32,
    }


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("{not json", "not valid JSON"),
        ("[1, 2]", "JSON object"),
        ('{"version": 1}', "secretKey"),
        ('{"secretKey": "zz"}', "secretKey"),
        (json.dumps({"secretKey": RFC_SEED, "publicKey": "lob1" + "00" * 32}), "does not match"),
    ],
)
def test_corrupt_identity_text_is_refused_with_a_reason(text: str, reason: str) -> None:
    with pytest.raises(IdentityError, match=reason):
        Identity.from_json(text)


@pytest.mark.parametrize(
    ("pubkey", "signature"),
    [
        ("lob2" + "00" * 32, "00" * 64),
        ("lob1" + "AB" * 32, "00" * 64),
        ("lob1" + RFC_PUBLIC, "00" * 63),
        ("lob1" + RFC_PUBLIC, "XY" * 64),
        # Keys are cached by their text: what is not a string is refused, not a TypeError.
        (["lob1" + RFC_PUBLIC], "00" * 64),
        ({"lob1": RFC_PUBLIC}, "00" * 64),
        (None, "00" * 64),
    ],
)
def test_malformed_keys_and_signatures(pubkey: Any, signature: str) -> None:
    with pytest.raises(MalformedMessage):
        verify_signature(pubkey, b"", signature)


class _PrintsAsKey:
    """Not a string, though ``str()`` of it is a well-formed key."""

    def __str__(self) -> str:
        return "lob1" + RFC_PUBLIC


def _nested(depth: int) -> list[Any]:
    value: list[Any] = []
    for _ in range(depth):
        value = [value]
    return value


@pytest.mark.parametrize("pubkey", [_PrintsAsKey(), _nested(100_000)], ids=["prints-as-a-key", "deeply-nested"])
def test_a_key_that_is_not_a_string_is_malformed_whatever_it_prints_as(pubkey: object) -> None:
    # A key is a lob1 string. The verify-key cache once took str() of anything, so an object
    # printing as a good key verified a good signature, and a deeply nested list raised
    # RecursionError (str() of it) instead of MalformedMessage.
    with pytest.raises(MalformedMessage):
        verify_signature(pubkey, b"", RFC_SIGNATURE)  # type: ignore[arg-type]
