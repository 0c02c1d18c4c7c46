"""OpenAI chat requests and responses ⇄ Ollama's chat API, as pure functions.

OpenAI → Ollama: text parts of multi-part content are joined, ``data:`` image URLs become
Ollama ``images``, assistant ``tool_calls`` (arguments as a JSON string) become Ollama tool calls
(arguments as an object), ``tool`` messages get the ``tool_name`` of the call they answer,
sampling options go to ``options`` (``max_completion_tokens``/``max_tokens`` → ``num_predict``),
``response_format`` goes to ``format``. Ollama → OpenAI: ``chat.completion`` and
``chat.completion.chunk`` objects with tool calls, ``finish_reason`` and usage from
``prompt_eval_count`` / ``eval_count``.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

from ..errors import RequestError
from .base import Usage

__all__ = ["to_ollama_chat", "to_openai_message", "to_openai_tool_calls", "finish_reason", "usage_from"]

# OpenAI request fields that map straight onto an Ollama option of the same meaning.
_OPTIONS = {
    "temperature": "temperature",
    "top_p": "top_p",
    "seed": "seed",
    "frequency_penalty": "frequency_penalty",
    "presence_penalty": "presence_penalty",
}


def to_ollama_chat(request: dict[str, Any]) -> dict[str, Any]:
    """Keyword arguments for ``ollama.AsyncClient.chat`` from an OpenAI chat request.

    Raises:
        RequestError: content Ollama cannot take (an image given by http URL, not data).
    """
    kwargs: dict[str, Any] = {
        "model": request["model"],
        "messages": _messages(request.get("messages", [])),
    }
    options = {ours: request[theirs] for theirs, ours in _OPTIONS.items() if request.get(theirs) is not None}
    max_tokens = request.get("max_completion_tokens") or request.get("max_tokens")
    if max_tokens is not None:
        options["num_predict"] = max_tokens
    stop = request.get("stop")
    if stop is not None:
        options["stop"] = [stop] if isinstance(stop, str) else list(stop)
    if options:
        kwargs["options"] = options
    tools = _tools(request.get("tools"), request.get("tool_choice"))
    if tools:
        kwargs["tools"] = tools
    response_format = _format(request.get("response_format"))
    if response_format is not None:
        kwargs["format"] = response_format
    return kwargs


def _messages(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    tool_names: dict[str, str] = {}
    converted = []
    for message in messages:
        role = "system" if message.get("role") == "developer" else message.get("role")
        text, images = _content(message.get("content"))
        out: dict[str, Any] = {"role": role, "content": text}
        if images:
            out["images"] = images
        calls = message.get("tool_calls") or []
        if calls:
            out["tool_calls"] = [_ollama_tool_call(call) for call in calls]
            tool_names.update({call.get("id", ""): call["function"]["name"] for call in calls})
        if role == "tool" and message.get("tool_call_id") in tool_names:
            out["tool_name"] = tool_names[message["tool_call_id"]]
        converted.append(out)
    return converted


def _content(content: Any) -> tuple[str, list[str]]:
    if content is None:
        return "", []
    if isinstance(content, str):
        return content, []
    texts, images = [], []
    for part in content:
        kind = part.get("type")
        if kind == "text":
            texts.append(part.get("text", ""))
        elif kind == "image_url":
            images.append(_image(part.get("image_url")))
    return "\n".join(texts), images


def _image(image_url: Any) -> str:
    url = image_url.get("url", "") if isinstance(image_url, dict) else str(image_url or "")
    if url.startswith("data:") and "," in url:
        return url.split(",", 1)[1]  # Ollama takes the bare base64
    raise RequestError("Ollama needs images inline: send image_url as a data: URL")


def _ollama_tool_call(call: dict[str, Any]) -> dict[str, Any]:
    function = call.get("function", {})
    arguments = function.get("arguments") or "{}"
    if isinstance(arguments, str):
        try:
            arguments = json.loads(arguments)
        except ValueError:
            raise RequestError(f"tool call arguments are not JSON: {arguments[:80]!r}") from None
    return {"function": {"name": function.get("name", ""), "arguments": arguments}}


def _tools(tools: Any, tool_choice: Any) -> list[dict[str, Any]] | None:
    # Ollama has no tool_choice: "none" withholds the tools, a named function offers only it,
    # "auto" and "required" offer them all.
    if not tools or tool_choice == "none":
        return None
    if isinstance(tool_choice, dict):
        wanted = tool_choice.get("function", {}).get("name")
        return [tool for tool in tools if tool.get("function", {}).get("name") == wanted]
    return list(tools)


def _format(response_format: Any) -> str | dict[str, Any] | None:
    if not isinstance(response_format, dict):
        return None
    kind = response_format.get("type")
    if kind == "json_object":
        return "json"
    if kind == "json_schema":
        return response_format.get("json_schema", {}).get("schema") or "json"
    return None


def to_openai_tool_calls(calls: Any) -> list[dict[str, Any]]:
    """Ollama tool calls as OpenAI ``tool_calls`` (ids minted, arguments as JSON text)."""
    return [
        {
            "id": f"call_{uuid.uuid4().hex[:24]}",
            "type": "function",
            "function": {
                "name": call["function"]["name"],
                "arguments": json.dumps(call["function"].get("arguments") or {}),
            },
        }
        for call in calls or []
    ]


def to_openai_message(message: dict[str, Any]) -> dict[str, Any]:
    """An Ollama response message as an OpenAI assistant message."""
    out: dict[str, Any] = {"role": "assistant", "content": message.get("content") or ""}
    calls = to_openai_tool_calls(message.get("tool_calls"))
    if calls:
        out["tool_calls"] = calls
        out["content"] = out["content"] or None
    return out


def finish_reason(done_reason: str | None, had_tool_calls: bool) -> str:
    if had_tool_calls:
        return "tool_calls"
    return "length" if done_reason == "length" else "stop"


def usage_from(response: dict[str, Any]) -> Usage:
    return Usage(response.get("prompt_eval_count") or 0, response.get("eval_count") or 0)
