"""Ollama's HTTP API ⇄ OpenAI's, as pure functions: what lets a router speak Ollama.

The reverse direction of ``engines/ollama_translate.py``: a router takes an Ollama request
(``/api/chat``, ``/api/generate``, ``/api/embed``, ``/api/embeddings``), sends a worker the
OpenAI request these functions make of it, and turns the worker's OpenAI answer (a whole body,
or the ``chat.completion.chunk`` events of a stream) back into Ollama JSON or NDJSON pieces.
Shapes follow Ollama's API reference (docs/api.md):

- requests: ``messages`` (``images`` as bare base64, ``tool_calls`` with arguments as an
  object, ``tool`` messages with ``tool_name``), ``prompt``/``system``/``images`` of a
  generate, ``format`` (``"json"`` or a JSON schema), ``options`` (``temperature``, ``top_p``,
  ``seed``, ``stop``, ``frequency_penalty``, ``presence_penalty``, ``num_predict`` →
  ``max_tokens``; other options have no OpenAI equivalent and are dropped), ``stream``
  (``true`` unless sent as ``false``);
- answers: ``model``, ``created_at`` (RFC 3339), ``message`` or ``response``, ``done``,
  ``done_reason`` and, on the last piece, the counters ``prompt_eval_count`` / ``eval_count``
  (the worker's usage, which its receipt signs) and ``total_duration``, ``load_duration``,
  ``prompt_eval_duration``, ``eval_duration`` in nanoseconds;
- errors: ``{"error": "<message>"}`` (in a stream, one such NDJSON line ends it).

Nothing here does I/O: times and durations are passed in.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictInt, StrictStr

from ..errors import RequestError

__all__ = [
    "OLLAMA_API_VERSION",
    "OllamaOptions",
    "OllamaChatRequest",
    "OllamaGenerateRequest",
    "OllamaEmbedRequest",
    "OllamaEmbeddingsRequest",
    "OllamaShowRequest",
    "Durations",
    "chat_request",
    "generate_request",
    "embed_request",
    "chat_response",
    "generate_response",
    "embed_response",
    "loaded_response",
    "StreamTranslator",
    "model_entry",
    "show_response",
    "error_body",
    "created_at",
]

#: The Ollama release whose API these routes follow (``GET /api/version``); clients such as
#: Open WebUI read it to decide which features they may use.
OLLAMA_API_VERSION = "0.12.0"

# Ollama options with an OpenAI request field of the same meaning.
_OPTIONS = ("temperature", "top_p", "seed", "frequency_penalty", "presence_penalty")
# Base64 openings of the image formats Ollama takes, for the data: URL's media type.
_IMAGE_TYPES = {"/9j/": "image/jpeg", "iVBORw0KGgo": "image/png", "R0lGOD": "image/gif", "UklGR": "image/webp"}


class _OllamaModel(BaseModel):
    # Fields we do not translate (keep_alive, think, raw, template, ...) are accepted and dropped.
    model_config = ConfigDict(extra="allow")


class OllamaMessage(_OllamaModel):
    role: str = Field(min_length=1)
    content: StrictStr | None = None
    images: list[StrictStr] | None = None
    tool_calls: list[dict[str, Any]] | None = None
    tool_name: str | None = None


class OllamaOptions(_OllamaModel):
    """``options`` of a generation, typed where the translation reads them as Ollama does
    (its Go server refuses a value of the wrong type with a 400); the sampling numbers are
    checked by the OpenAI request they become, the options without an OpenAI field not at all."""

    stop: StrictStr | list[StrictStr] | None = None
    #: At most this many tokens; Ollama's -1 and -2 mean "no limit".
    num_predict: StrictInt | None = None


class _GenerationRequest(_OllamaModel):
    """What ``/api/chat`` and ``/api/generate`` share."""

    model: str = Field(min_length=1)
    #: ``"json"``, or a JSON schema the answer must follow.
    format: str | dict[str, Any] | None = None
    options: OllamaOptions | None = None
    stream: bool | None = None

    @property
    def streamed(self) -> bool:
        """Ollama streams unless told ``"stream": false``."""
        return self.stream is not False


class OllamaChatRequest(_GenerationRequest):
    """``POST /api/chat``."""

    messages: list[OllamaMessage] = []
    tools: list[dict[str, Any]] | None = None


class OllamaGenerateRequest(_GenerationRequest):
    """``POST /api/generate``."""

    prompt: StrictStr = ""
    system: StrictStr | None = None
    images: list[StrictStr] | None = None


class OllamaEmbedRequest(_OllamaModel):
    """``POST /api/embed``."""

    model: str = Field(min_length=1)
    input: StrictStr | list[StrictStr]
    dimensions: int | None = Field(default=None, ge=1)


class OllamaEmbeddingsRequest(_OllamaModel):
    """``POST /api/embeddings`` (Ollama's older embeddings route: one ``prompt``)."""

    model: str = Field(min_length=1)
    prompt: StrictStr = ""


class OllamaShowRequest(_OllamaModel):
    """``POST /api/show``: ``model`` (older clients send ``name``)."""

    model: str | None = None
    name: str | None = None

    @property
    def wanted(self) -> str:
        """The model asked about.

        Raises:
            RequestError: neither ``model`` nor ``name`` given.
        """
        if not (self.model or self.name):
            raise RequestError("model is required")
        return self.model or self.name or ""


@dataclass(frozen=True)
class Durations:
    """Nanoseconds an answer took, as Ollama reports them: all of it, and of that the wait
    for the first token (Ollama's prompt evaluation) and the rest (generation)."""

    total_ns: int
    prompt_eval_ns: int = 0

    def counters(self, usage: dict[str, Any] | None) -> dict[str, int]:
        """Ollama's final counters from an OpenAI ``usage`` and these durations."""
        usage = usage or {}
        return {
            "total_duration": self.total_ns,
            "load_duration": 0,
            "prompt_eval_count": int(usage.get("prompt_tokens") or 0),
            "prompt_eval_duration": self.prompt_eval_ns,
            "eval_count": int(usage.get("completion_tokens") or 0),
            "eval_duration": max(0, self.total_ns - self.prompt_eval_ns),
        }


def created_at(now_ms: int) -> str:
    """``now_ms`` as Ollama's ``created_at``: RFC 3339 in UTC, e.g. ``2026-11-29T15:25:12.345Z``."""
    return _utc(now_ms // 1000) + f".{now_ms % 1000:03d}Z"


def _utc(seconds: int) -> str:
    """Unix ``seconds`` as ``YYYY-MM-DDTHH:MM:SS`` in UTC, by arithmetic alone (the protocol
    package reads no clock and no time zone): H. Hinnant's ``civil_from_days``."""
    days, rest = divmod(seconds, 86_400)
    era, day_of_era = divmod(days + 719_468, 146_097)
    year_of_era = (day_of_era - day_of_era // 1460 + day_of_era // 36_524 - day_of_era // 146_096) // 365
    day_of_year = day_of_era - (365 * year_of_era + year_of_era // 4 - year_of_era // 100)
    month_index = (5 * day_of_year + 2) // 153
    day = day_of_year - (153 * month_index + 2) // 5 + 1
    month = month_index + 3 if month_index < 10 else month_index - 9
    year = year_of_era + era * 400 + (month <= 2)
    return f"{year:04d}-{month:02d}-{day:02d}T{rest // 3600:02d}:{rest % 3600 // 60:02d}:{rest % 60:02d}"


def error_body(message: str) -> dict[str, str]:
    """Ollama's error shape."""
    return {"error": message}


# --- requests: Ollama → OpenAI -------------------------------------------------------------


def chat_request(request: OllamaChatRequest) -> dict[str, Any]:
    """The OpenAI chat request for an Ollama ``/api/chat`` (streams ask for usage, which
    Ollama's final counters need)."""
    body = _sampling(request)
    body["messages"] = _messages(request.messages)
    if request.tools:
        body["tools"] = request.tools
    return body


def generate_request(request: OllamaGenerateRequest) -> dict[str, Any]:
    """The OpenAI chat request for an Ollama ``/api/generate``: ``system`` and ``prompt``
    (with its ``images``) as a two-message chat."""
    body = _sampling(request)
    messages = [OllamaMessage(role="system", content=request.system)] if request.system else []
    messages.append(OllamaMessage(role="user", content=request.prompt, images=request.images))
    body["messages"] = _messages(messages)
    return body


def embed_request(model: str, texts: list[str], dimensions: int | None = None) -> dict[str, Any]:
    """The OpenAI embeddings request for ``/api/embed`` or ``/api/embeddings`` (floats)."""
    body: dict[str, Any] = {"model": model, "input": texts, "encoding_format": "float"}
    if dimensions is not None:
        body["dimensions"] = dimensions
    return body


def _sampling(request: _GenerationRequest) -> dict[str, Any]:
    body: dict[str, Any] = {"model": request.model, "stream": request.streamed}
    if request.streamed:
        body["stream_options"] = {"include_usage": True}
    options, fmt = request.options or OllamaOptions(), request.format
    given = options.model_dump(exclude_none=True)
    body.update({name: given[name] for name in _OPTIONS if name in given})
    if options.num_predict is not None and options.num_predict > 0:
        body["max_tokens"] = options.num_predict
    if options.stop:
        body["stop"] = [options.stop] if isinstance(options.stop, str) else options.stop
    if fmt == "json":
        body["response_format"] = {"type": "json_object"}
    elif isinstance(fmt, dict):
        body["response_format"] = {"type": "json_schema", "json_schema": {"name": "response", "schema": fmt}}
    return body


def _messages(messages: Iterable[OllamaMessage]) -> list[dict[str, Any]]:
    """OpenAI messages; tool results are matched to the calls they answer by ``tool_name``."""
    converted: list[dict[str, Any]] = []
    pending: list[tuple[str, str]] = []  # (call id, function name) not answered yet
    for message in messages:
        out: dict[str, Any] = {"role": message.role, "content": _content(message.content or "", message.images)}
        if message.tool_calls:
            calls = [_openai_tool_call(call, f"call_{len(converted)}_{i}") for i, call in enumerate(message.tool_calls)]
            out["tool_calls"] = calls
            pending += [(call["id"], call["function"]["name"]) for call in calls]
        if message.role == "tool":
            match = next((p for p in pending if p[1] == message.tool_name), pending[0] if pending else None)
            if match is not None:
                pending.remove(match)
            out["tool_call_id"] = match[0] if match else f"call_{len(converted)}"
        converted.append(out)
    return converted


def _content(text: str, images: list[str] | None) -> str | list[dict[str, Any]]:
    if not images:
        return text
    parts: list[dict[str, Any]] = [{"type": "text", "text": text}] if text else []
    for image in images:
        media = next((kind for opening, kind in _IMAGE_TYPES.items() if image.startswith(opening)), "image/png")
        parts.append({"type": "image_url", "image_url": {"url": f"data:{media};base64,{image}"}})
    return parts


def _openai_tool_call(call: dict[str, Any], call_id: str) -> dict[str, Any]:
    function = call.get("function") if isinstance(call.get("function"), dict) else {}
    arguments = function.get("arguments")
    if not isinstance(arguments, str):
        arguments = json.dumps(arguments or {})
    return {"id": call_id, "type": "function", "function": {"name": str(function.get("name", "")), "arguments": arguments}}


# --- answers: OpenAI → Ollama --------------------------------------------------------------


def _ollama_tool_calls(calls: Any) -> list[dict[str, Any]]:
    """OpenAI tool calls as Ollama's (arguments as an object; text that is not JSON kept)."""
    out = []
    for call in calls or []:
        function = call.get("function") or {}
        try:
            arguments = json.loads(function.get("arguments") or "{}")
        except ValueError:
            arguments = function.get("arguments")
        out.append({"function": {"name": function.get("name", ""), "arguments": arguments}})
    return out


def _done_reason(finish_reason: Any) -> str:
    return "length" if finish_reason == "length" else "stop"


def _first_choice(completion: dict[str, Any]) -> dict[str, Any]:
    choices = completion.get("choices")
    if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
        raise ValueError("the answer has no choices")
    return choices[0]


def chat_response(completion: dict[str, Any], model: str, now_ms: int, durations: Durations) -> dict[str, Any]:
    """An OpenAI ``chat.completion`` as Ollama's ``/api/chat`` answer.

    Raises:
        ValueError: ``completion`` has no choice.
    """
    choice = _first_choice(completion)
    message = choice.get("message") or {}
    out: dict[str, Any] = {"role": "assistant", "content": message.get("content") or ""}
    if message.get("tool_calls"):
        out["tool_calls"] = _ollama_tool_calls(message["tool_calls"])
    return {
        "model": model, "created_at": created_at(now_ms), "message": out, "done": True,
        "done_reason": _done_reason(choice.get("finish_reason")), **durations.counters(completion.get("usage")),
    }


def generate_response(completion: dict[str, Any], model: str, now_ms: int, durations: Durations) -> dict[str, Any]:
    """An OpenAI ``chat.completion`` as Ollama's ``/api/generate`` answer.

    Raises:
        ValueError: ``completion`` has no choice.
    """
    choice = _first_choice(completion)
    return {
        "model": model, "created_at": created_at(now_ms), "response": (choice.get("message") or {}).get("content") or "",
        "done": True, "done_reason": _done_reason(choice.get("finish_reason")), **durations.counters(completion.get("usage")),
    }


def loaded_response(kind: Literal["chat", "generate"], model: str, now_ms: int) -> dict[str, Any]:
    """Ollama's answer to a chat without messages or a generate without a prompt (which
    clients send to load a model): done at once, ``done_reason`` ``load``."""
    body: dict[str, Any] = {"model": model, "created_at": created_at(now_ms)}
    body.update({"message": {"role": "assistant", "content": ""}} if kind == "chat" else {"response": ""})
    return {**body, "done": True, "done_reason": "load"}


def embed_response(embeddings: dict[str, Any], model: str, durations: Durations) -> dict[str, Any]:
    """An OpenAI embeddings list (floats) as Ollama's ``/api/embed`` answer.

    Raises:
        ValueError: the list is not one of float vectors.
    """
    try:
        data = sorted(embeddings["data"], key=lambda item: item["index"])
        vectors = [[float(x) for x in item["embedding"]] for item in data]
    except (KeyError, TypeError, ValueError):
        raise ValueError("the answer is not an embeddings list of floats") from None
    counters = durations.counters(embeddings.get("usage"))
    return {
        "model": model, "embeddings": vectors, "total_duration": counters["total_duration"],
        "load_duration": 0, "prompt_eval_count": counters["prompt_eval_count"],
    }


class StreamTranslator:
    """OpenAI ``chat.completion.chunk`` objects in, Ollama NDJSON pieces out, for one stream
    of ``/api/chat`` (pieces carry ``message``) or ``/api/generate`` (they carry ``response``).

    Text goes out as it comes; tool calls, which OpenAI streams in fragments, go out whole
    in one piece once the stream ends; the last piece has ``done: true`` and the counters.
    """

    def __init__(self, kind: Literal["chat", "generate"], model: str) -> None:
        self.kind, self.model = kind, model
        self._usage: dict[str, Any] | None = None
        self._finish_reason: Any = None
        self._tool_calls: dict[int, dict[str, Any]] = {}
        #: Whether the worker ended the stream with an error (no final piece follows).
        self.failed = False

    def feed(self, chunk: dict[str, Any], now_ms: int) -> list[dict[str, Any]]:
        """The pieces one chunk makes (often one, maybe none)."""
        if isinstance(chunk.get("error"), dict):
            self.failed = True
            return [error_body(str(chunk["error"].get("message") or "the worker failed"))]
        if isinstance(chunk.get("usage"), dict):
            self._usage = chunk["usage"]
        pieces = []
        for choice in chunk.get("choices") or []:
            delta = choice.get("delta") or {}
            self._finish_reason = choice.get("finish_reason") or self._finish_reason
            for call in delta.get("tool_calls") or []:
                self._add_tool_call(call)
            if delta.get("content"):
                pieces.append(self._piece(delta["content"], now_ms))
        return pieces

    def finish(self, now_ms: int, durations: Durations) -> list[dict[str, Any]]:
        """The last pieces: gathered tool calls, if any, then ``done`` with the counters."""
        pieces = []
        if self._tool_calls:
            calls = [self._tool_calls[index] for index in sorted(self._tool_calls)]
            piece = self._piece("", now_ms)
            piece["message"]["tool_calls"] = _ollama_tool_calls(calls)
            pieces.append(piece)
        last = self._piece("", now_ms)
        last.update(done=True, done_reason=_done_reason(self._finish_reason), **durations.counters(self._usage))
        return [*pieces, last]

    def _piece(self, text: str, now_ms: int) -> dict[str, Any]:
        body: dict[str, Any] = {"model": self.model, "created_at": created_at(now_ms)}
        if self.kind == "chat":
            body["message"] = {"role": "assistant", "content": text}
        else:
            body["response"] = text
        body["done"] = False
        return body

    def _add_tool_call(self, fragment: dict[str, Any]) -> None:
        call = self._tool_calls.setdefault(int(fragment.get("index") or 0), {"function": {"name": "", "arguments": ""}})
        function = fragment.get("function") or {}
        call["function"]["name"] += function.get("name") or ""
        call["function"]["arguments"] += function.get("arguments") or ""


# --- the model list ------------------------------------------------------------------------


def model_entry(name: str, created_s: int) -> dict[str, Any]:
    """One model of ``/api/tags`` and ``/api/ps``. The grid has no file per model, so
    ``size`` is 0 and ``digest`` the SHA-256 of the name (stable, for clients that key on it)."""
    modified = _utc(created_s) + "Z"
    return {
        "name": name,
        "model": name,
        "modified_at": modified,
        "size": 0,
        "digest": hashlib.sha256(name.encode()).hexdigest(),
        "details": {"parent_model": "", "format": "", "family": "", "families": None,
                    "parameter_size": "", "quantization_level": ""},
    }


def show_response(name: str, owned_by: str, embeds: bool) -> dict[str, Any]:
    """``/api/show`` for a model of the grid: who serves it and what it can do."""
    return {
        "modelfile": f"# {name}, served by the lobstah grid ({owned_by})\nFROM {name}\n",
        "parameters": "",
        "template": "",
        "details": model_entry(name, 0)["details"],
        "model_info": {},
        "capabilities": ["embedding"] if embeds else ["completion"],
    }
