"""The base of every wire model, and signing of JSON objects over their canonical form."""

from __future__ import annotations

import json
from typing import Annotated, Any, TypeVar

from pydantic import BaseModel, ConfigDict, Field, StrictInt, StringConstraints, ValidationError
from pydantic.alias_generators import to_camel

from ..errors import MalformedMessage
from .canonical import MAX_SAFE_INTEGER, canonical_bytes
from .identity import Identity, verify_signature

__all__ = [
    "WireModel",
    "Pubkey",
    "HexSignature",
    "SafeCount",
    "EpochMs",
    "parse_json",
    "parse_model",
    "describe_validation_error",
    "sign_object",
    "verify_object",
]

#: ``lob1`` + 64 lowercase hex digits.
Pubkey = Annotated[str, StringConstraints(pattern=r"^lob1[0-9a-f]{64}$")]
#: An Ed25519 signature as 128 lowercase hex digits.
HexSignature = Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{128}$")]
#: A count or size on the wire: non-negative and within JavaScript's safe range, n <= 2**53 - 1
#: (WIRE.md "[ext] bounds"); ``canonicalize`` bounds every other integer of a signed object.
#: Do not stack another ``Field(ge=…)`` on these aliases: pydantic keeps the last bound of each
#: kind, so the alias's own would win.
SafeCount = Annotated[StrictInt, Field(ge=0, le=MAX_SAFE_INTEGER)]
#: A time on the wire: integer milliseconds (or, in Nostr, seconds) since the epoch.
EpochMs = SafeCount


class WireModel(BaseModel):
    """A JSON body of the wire format: camelCase on the wire, snake_case in Python.

    ``to_wire()`` returns exactly the fields that were given (``exclude_unset``), so a model
    parsed from a peer's JSON reproduces that JSON's keys, and therefore its signature.
    """

    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        frozen=True,
    )

    def to_wire(self) -> dict[str, Any]:
        """The JSON object of this model, with the wire's key names."""
        return self.model_dump(mode="json", by_alias=True, exclude_unset=True)


M = TypeVar("M", bound=BaseModel)


def parse_json(text: str | bytes) -> Any:
    """The value of a JSON text a peer sent.

    Raises:
        MalformedMessage: not JSON, or nested too deeply to parse (a 30,000-deep array makes
            ``json.loads`` raise ``RecursionError``, which must never escape as a crash).
    """
    try:
        return json.loads(text)
    except (ValueError, UnicodeDecodeError) as exc:
        raise MalformedMessage(f"not JSON ({exc})") from None
    except RecursionError:
        raise MalformedMessage("JSON nested too deeply") from None


def parse_model(model_type: type[M], value: M | dict[str, Any]) -> M:
    """``value`` as a ``model_type``: returned as is if it already is one, else validated.

    Raises:
        MalformedMessage: naming the first field that does not validate.
    """
    if isinstance(value, model_type):
        return value
    try:
        return model_type.model_validate(value)
    except ValidationError as exc:
        raise MalformedMessage(
            f"malformed {model_type.__name__}: {describe_validation_error(exc)}"
        ) from None


def describe_validation_error(exc: ValidationError) -> str:
    """One readable line for the problem pydantic found, e.g. ``messages.0.role: ...``.

    Where a value could take several shapes (a message's content: a string or a list of parts)
    the deepest problem is the one meant, and pydantic's names for the shapes (``str``,
    ``list[...]``) are left out of the path.
    """
    errors = exc.errors()
    deepest = max(len(e["loc"]) for e in errors)
    path = _path(next(e for e in errors if len(e["loc"]) == deepest))
    # Every shape the value could have had, at that place: "a valid string or a valid list".
    shapes = [e for e in errors if len(e["loc"]) == deepest and _path(e) == path]
    if any(e["type"].startswith("float") for e in shapes):  # a number: "integer" says too little
        shapes = [e for e in shapes if not e["type"].startswith("int")] or shapes
    messages = list(dict.fromkeys(e["msg"] for e in shapes))
    wanted = [m.removeprefix("Input should be ") for m in messages[1:] if m.startswith("Input should be ")]
    message = messages[0] if len(wanted) < len(messages) - 1 else " or ".join([messages[0], *wanted])
    return f"{path or 'body'}: {message}"


def _path(error: Any) -> str:
    return ".".join(str(part) for part in error["loc"] if not _is_shape_label(part))


_SHAPE_LABELS = frozenset({"str", "int", "float", "bool", "dict", "list", "none", "function-after", "function-before"})


def _is_shape_label(part: object) -> bool:
    return isinstance(part, str) and ("[" in part or part in _SHAPE_LABELS)


def sign_object(body: dict[str, Any], identity: Identity) -> str:
    """The hex Ed25519 signature by ``identity`` over the canonical JSON of ``body``."""
    return identity.sign_hex(canonical_bytes(body))


def verify_object(pubkey: str, body: dict[str, Any], signature: str) -> None:
    """Check that ``signature`` by ``pubkey`` covers the canonical JSON of ``body``.

    Raises:
        MalformedMessage: malformed key or signature.
        InvalidSignature: the signature does not verify.
    """
    verify_signature(pubkey, canonical_bytes(body), signature)
