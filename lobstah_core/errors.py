"""The error hierarchy of lobstah_core.

Every error carries a wire ``type`` (the ``error.type`` of an HTTP error body) and an HTTP
``status``, so each server maps them to responses once, in a middleware, and the CLI prints
``str(error)`` as its one readable line.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "LobstahError",
    "ProtocolError",
    "InvalidSignature",
    "MalformedMessage",
    "StaleMessage",
    "UnsafeUrl",
    "IdentityError",
    "LedgerError",
    "StoreError",
    "RetryLater",
    "RequestError",
    "InvalidJson",
    "RequestTimeout",
    "UnsupportedMediaType",
    "PayloadTooLarge",
    "Unauthorized",
    "InsufficientCredit",
    "NotFound",
    "ModelNotFound",
    "NotCancellable",
    "Overloaded",
    "EngineError",
    "EngineUnavailable",
    "EngineRejected",
    "EngineBusy",
    "NoPeers",
    "NoCapablePeer",
    "AllPeersFailed",
    "ConfigError",
    "SwitchRefused",
    "describe_os_error",
    "BadBatchInput",
]


class LobstahError(Exception):
    """Base of every error lobstah_core raises on purpose."""

    type: str = "lobstah_error"
    status: int = 500

    def __init__(self, message: str, **details: Any) -> None:
        super().__init__(message)
        self.message = message
        #: Extra fields for the HTTP error body (e.g. ``model``, ``attempts``).
        self.details = details

    def to_body(self) -> dict[str, Any]:
        """The JSON error body ``{"error": {"type", "message", ...}}`` of the wire format."""
        return {"error": {"type": self.type, "message": self.message, **self.details}}


class ProtocolError(LobstahError):
    """A message that does not meet the wire format."""

    type = "protocol_error"
    status = 400


class MalformedMessage(ProtocolError):
    """Not the right shape: bad JSON, missing fields, wrong types."""

    type = "invalid_request"


class InvalidSignature(ProtocolError):
    """A signature that does not verify against the claimed public key."""

    type = "bad_signature"


class StaleMessage(ProtocolError):
    """A timestamp outside the accepted window (too old or too far in the future)."""

    type = "stale"


class UnsafeUrl(ProtocolError):
    """A peer URL refused by the URL-safety policy."""

    type = "unsafe_url"


class IdentityError(LobstahError):
    """The identity file is missing, unreadable or corrupt."""

    type = "identity_error"


class LedgerError(LobstahError):
    """The ledger store cannot be opened or written."""

    type = "ledger_error"


class StoreError(LobstahError):
    """Another SQLite store of a node (batches, jobs) cannot be opened: not a database, or
    unreadable. The server does not start; the file is left as it is."""

    type = "store_error"


class RetryLater(LobstahError):
    """An error that tells the client when to try again: ``retry_after`` whole seconds, sent
    as the ``Retry-After`` header (RFC 9110 §10.2.3)."""

    def __init__(self, message: str, retry_after: int = 1, **details: object) -> None:
        super().__init__(message, **details)
        self.retry_after = retry_after


class RequestError(LobstahError):
    """A request a server refuses (the subclasses set the HTTP status)."""

    type = "invalid_request"
    status = 400


class InvalidJson(RequestError):
    type = "invalid_json"


class RequestTimeout(RequestError):
    """The client stopped sending its request midway; the server closes the connection."""

    type = "request_timeout"
    status = 408
    close_connection = True


class UnreadableBody(RequestError):
    """A request body that cannot be decoded as its headers declare (a ``Content-Encoding:
    gzip`` body that is not gzip, a chunked body that breaks the chunk format): the rest of
    the connection cannot be trusted, so the server closes it."""

    close_connection = True


class UnsupportedMediaType(RequestError):
    type = "unsupported_media_type"
    status = 415


class PayloadTooLarge(RequestError):
    type = "payload_too_large"
    status = 413


class Unauthorized(RequestError):
    type = "unauthorized"
    status = 401


class InsufficientCredit(RequestError):
    """The requester's available credit in this worker's ledger is used up."""

    type = "insufficient_credit"
    status = 402


class NotFound(RequestError):
    type = "not_found"
    status = 404


class ModelNotFound(NotFound):
    type = "model_not_found"


class NotCancellable(RequestError):
    type = "not_cancellable"
    status = 409


class Overloaded(RetryLater, RequestError):
    """The worker's queue is full; ``retry_after`` seconds is a fair wait."""

    type = "overloaded"
    status = 429


class EngineError(LobstahError):
    """The inference engine (Ollama, an upstream) failed or cannot be reached."""

    type = "engine_error"
    status = 502


class EngineUnavailable(EngineError):
    """The engine cannot be set up here: an optional extra not installed, a model file that is
    missing or is not a model. Raised when the engine is built, so the operator reads it at
    start in one line."""

    type = "engine_unavailable"


class EngineRejected(RequestError):
    """The engine refused the request itself (bad parameters, context too long, a model that
    cannot use tools): the client's fault, passed back with the upstream's 4xx status.

    WIRE.md "[ext] who is to blame": no failover and no penalty for the peer.
    """

    type = "invalid_request"

    def __init__(self, message: str, status: int = 400, **details: object) -> None:
        super().__init__(message, **details)
        self.status = status if 400 <= status < 500 else 400


class EngineBusy(RetryLater):
    """The engine is busy (upstream 429, or 503 with ``Retry-After``); ``retry_after`` seconds.

    WIRE.md "[ext] who is to blame": the router moves on to another peer without a penalty.
    """

    type = "engine_busy"
    status = 503


class NoPeers(LobstahError):
    """The router has no peers at all."""

    type = "no_peers"
    status = 503


class NoCapablePeer(RetryLater):
    """Peers serve the requested model but none can take it now (all excluded, or not
    reachable); ``retry_after`` seconds is when one may be back (WIRE.md "[ext] who is to
    blame")."""

    type = "no_capable_peer"
    status = 503


class AllPeersFailed(LobstahError):
    """Every candidate peer failed; ``errors`` lists what each said."""

    type = "all_peers_failed"
    status = 502


class ConfigError(LobstahError):
    """A file or setting of the operator's that has the wrong shape (e.g. a string where
    openclaw's config needs an object); nothing was changed."""

    type = "config_error"
    status = 400


class SwitchRefused(LobstahError):
    """The advertise or sync switch cannot be turned on as configured; it stays off.

    The message says what to configure (e.g. ``--announce-to`` or ``--sync-from``).
    """

    type = "switch_refused"
    status = 409


def describe_os_error(exc: OSError) -> str:
    """One readable line for a file or socket error, naming the path when there is one.

    ``mkdir(parents=True, exist_ok=True)`` raises FileExistsError when a file sits where a
    directory belongs (``LOBSTAH_HOME`` pointing at a file), NotADirectoryError when a file is
    part of the path: both read as "a file is in the way".
    """
    where = exc.filename
    if where is None:
        return f"{exc.strerror or exc}"
    if isinstance(exc, FileExistsError | NotADirectoryError):
        return f"cannot use {where}: a file is in the way where a directory is needed"
    if isinstance(exc, PermissionError):
        return f"cannot write {where}: permission denied (a read-only home? set LOBSTAH_HOME)"
    return f"cannot use {where}: {exc.strerror or exc}"


class BadBatchInput(RequestError):
    """A batch input file with lines that cannot run; ``errors`` lists them by line number
    (OpenAI's batch error objects ``{code, message, param, line}``)."""

    type = "invalid_batch_input"
