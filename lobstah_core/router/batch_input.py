"""A batch input file (OpenAI Batch API JSONL), checked line by line before anything runs.

Each line is ``{"custom_id": str, "method": "POST", "url": "/v1/chat/completions", "body":
{chat request}}``, or ``"url": "/v1/embeddings"`` with an embeddings request as its body
(OpenAI "Batch API: the input file"). Every problem is reported with its
1-based line number, up to :data:`MAX_LINE_ERRORS` of them, so a client fixes the file in one
go; one bad line refuses the whole file (nothing runs half-checked). Pure: no files, no clock.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from ..errors import BadBatchInput
from ..protocol.schemas import ChatCompletionRequest, EmbeddingRequest
from ..protocol.wire import describe_validation_error

__all__ = ["BatchLine", "parse_batch_input", "BATCH_ENDPOINTS", "MAX_LINE_ERRORS"]

#: The request a line's body must be, by its ``url``.
_REQUEST_OF: dict[str, type[ChatCompletionRequest] | type[EmbeddingRequest]] = {
    "/v1/chat/completions": ChatCompletionRequest, "/v1/embeddings": EmbeddingRequest,
}
#: The endpoints a batch may target (OpenAI's also include /v1/responses and /v1/completions,
#: which this router does not serve).
BATCH_ENDPOINTS = tuple(_REQUEST_OF)
#: Line errors reported at most per refusal.
MAX_LINE_ERRORS = 20


@dataclass(frozen=True)
class BatchLine:
    """One request of a batch: ``body`` is the line's body as compact JSON bytes."""

    line: int
    custom_id: str
    url: str
    model: str
    body: bytes


def parse_batch_input(content: bytes, endpoint: str | None = None) -> list[BatchLine]:
    """The requests of a JSONL batch file (blank lines skipped, still counted).

    Args:
        content: the file as uploaded.
        endpoint: when given, every line's ``url`` must be this one (``POST /v1/batches``).

    Raises:
        BadBatchInput: with ``errors`` = ``[{code, message, param, line}]``, the first
            :data:`MAX_LINE_ERRORS` problems.
    """
    lines: list[BatchLine] = []
    errors: list[dict[str, Any]] = []
    seen: dict[str, int] = {}
    for number, raw in enumerate(content.split(b"\n"), start=1):
        if not raw.strip():
            continue
        try:
            item = _parse_line(raw, endpoint)
        except _LineError as exc:
            errors.append({"code": exc.code, "message": exc.message, "param": exc.param, "line": number})
            continue
        first = seen.setdefault(item[0], number)
        if first != number:
            errors.append({
                "code": "duplicate_custom_id", "param": "custom_id", "line": number,
                "message": f"custom_id {item[0]!r} is already used on line {first}",
            })
            continue
        lines.append(BatchLine(number, *item))
    if not lines and not errors:
        errors.append({"code": "empty_file", "message": "the file holds no requests", "param": None, "line": None})
    if errors:
        shown = "; ".join(f"line {e['line']}: {e['message']}" if e["line"] else e["message"] for e in errors[:3])
        more = f" (and {len(errors) - 3} more)" if len(errors) > 3 else ""
        raise BadBatchInput(f"invalid batch input: {shown}{more}", errors=errors[:MAX_LINE_ERRORS])
    return lines


class _LineError(Exception):
    def __init__(self, code: str, message: str, param: str | None = None) -> None:
        super().__init__(message)
        self.code, self.message, self.param = code, message, param


def _parse_line(raw: bytes, endpoint: str | None) -> tuple[str, str, str, bytes]:
    """``(custom_id, url, model, body bytes)`` of one line, or :class:`_LineError`."""
    try:
        item = json.loads(raw)
    except (ValueError, RecursionError) as exc:
        raise _LineError("invalid_json", f"not valid JSON ({exc})") from None
    if not isinstance(item, dict):
        raise _LineError("invalid_json", "a line must be a JSON object")
    custom_id = item.get("custom_id")
    if not isinstance(custom_id, str) or not custom_id:
        raise _LineError("missing_custom_id", "custom_id must be a non-empty string", "custom_id")
    if item.get("method") != "POST":
        raise _LineError("invalid_method", f"method must be \"POST\", not {item.get('method')!r}", "method")
    url = item.get("url")
    if url not in BATCH_ENDPOINTS:
        raise _LineError("invalid_url", f"url must be one of {', '.join(BATCH_ENDPOINTS)}, not {url!r}", "url")
    if endpoint is not None and url != endpoint:
        raise _LineError("mismatched_url", f"url {url!r} differs from the batch's endpoint {endpoint!r}", "url")
    body = item.get("body")
    if not isinstance(body, dict):
        raise _LineError("invalid_body", f"body must be a JSON object (the request to {url})", "body")
    try:
        request = _REQUEST_OF[url].model_validate(body)
    except ValidationError as exc:
        raise _LineError("invalid_body", f"body.{describe_validation_error(exc)}", "body") from None
    if isinstance(request, ChatCompletionRequest) and request.streamed:
        raise _LineError("invalid_body", "body.stream: a batch request cannot stream", "body.stream")
    return custom_id, url, request.model, json.dumps(body, separators=(",", ":")).encode()

