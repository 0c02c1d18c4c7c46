"""Ollama's API to OpenAI's and back, as pure functions (Ollama docs/api.md shapes)."""

from __future__ import annotations

import datetime as dt
import json

from lobstah_core.protocol.ollama_api import (
    Durations,
    OllamaChatRequest,
    OllamaGenerateRequest,
    StreamTranslator,
    chat_request,
    chat_response,
    created_at,
    generate_request,
)

PNG = "iVBORw0KGgoAAAANSUhEUg=="
WEATHER = {"function": {"name": "get_weather", "arguments": {"city": "Paris"}}}


def test_chat_request_translates_options_format_images_and_tools() -> None:
    request = OllamaChatRequest.model_validate({
        "model": "llava",
        "messages": [
            {"role": "user", "content": "what is this", "images": [PNG, "/9j/4AAQ"]},
            {"role": "assistant", "content": "", "tool_calls": [WEATHER]},
            {"role": "tool", "content": "sunny", "tool_name": "get_weather"},
        ],
        "options": {"temperature": 0.1, "num_predict": 7, "stop": "END", "top_k": 3, "seed": 1},
        "format": {"type": "object"},
        "tools": [{"type": "function", "function": {"name": "get_weather"}}],
        "keep_alive": "5m",
    })
    body = chat_request(request)
    assert body["stream"] is True and body["stream_options"] == {"include_usage": True}
    assert (body["temperature"], body["max_tokens"], body["stop"], body["seed"]) == (0.1, 7, ["END"], 1)
    assert "top_k" not in body and "keep_alive" not in body
    assert body["response_format"]["json_schema"]["schema"] == {"type": "object"}
    user, assistant, tool = body["messages"]
    assert [part["type"] for part in user["content"]] == ["text", "image_url", "image_url"]
    assert user["content"][1]["image_url"]["url"] == f"data:image/png;base64,{PNG}"
    assert user["content"][2]["image_url"]["url"].startswith("data:image/jpeg;base64,")
    call = assistant["tool_calls"][0]
    assert json.loads(call["function"]["arguments"]) == {"city": "Paris"}
    assert tool == {"role": "tool", "content": "sunny", "tool_call_id": call["id"]}


def test_plain_requests_and_no_limit() -> None:
    body = chat_request(OllamaChatRequest.model_validate(
        {"model": "m", "messages": [{"role": "user", "content": "x"}], "stream": False, "options": {"num_predict": -1}, "format": "json"}))
    assert body["stream"] is False and "stream_options" not in body and "max_tokens" not in body
    assert body["response_format"] == {"type": "json_object"}


def test_generate_is_a_chat_of_system_and_prompt() -> None:
    body = generate_request(OllamaGenerateRequest(model="m", prompt="hi", system="be brief", stream=False))
    assert body["messages"] == [{"role": "system", "content": "be brief"}, {"role": "user", "content": "hi"}]


def test_chat_response_with_tool_calls_and_counters() -> None:
    completion = {
        "choices": [{"message": {"role": "assistant", "content": None, "tool_calls": [
            {"id": "c1", "type": "function", "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'}}]},
            "finish_reason": "tool_calls"}],
        "usage": {"prompt_tokens": 11, "completion_tokens": 4},
    }
    answer = chat_response(completion, "m", 1_767_225_600_123, Durations(5_000, 1_000))
    assert answer["created_at"] == "2026-01-01T00:00:00.123Z"
    assert answer["message"] == {"role": "assistant", "content": "", "tool_calls": [WEATHER]}
    assert (answer["done"], answer["done_reason"]) == (True, "stop")
    assert (answer["prompt_eval_count"], answer["eval_count"]) == (11, 4)
    assert (answer["total_duration"], answer["prompt_eval_duration"], answer["eval_duration"]) == (5_000, 1_000, 4_000)


def test_stream_gathers_fragmented_tool_calls_and_ends_with_counters() -> None:
    translator = StreamTranslator("chat", "m")
    chunks = [
        {"choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}}]},
        {"choices": [{"index": 0, "delta": {"content": "Let me look"}}]},
        {"choices": [{"index": 0, "delta": {"tool_calls": [{"index": 0, "id": "c", "function": {"name": "get_weather", "arguments": '{"ci'}}]}}]},
        {"choices": [{"index": 0, "delta": {"tool_calls": [{"index": 0, "function": {"arguments": 'ty": "Paris"}'}}]}}]},
        {"choices": [{"index": 0, "delta": {}, "finish_reason": "tool_calls"}]},
        {"choices": [], "usage": {"prompt_tokens": 3, "completion_tokens": 9}},
    ]
    pieces = [piece for chunk in chunks for piece in translator.feed(chunk, 0)]
    assert [p["message"]["content"] for p in pieces] == ["Let me look"]
    calls, last = translator.finish(0, Durations(10, 4))
    assert calls["message"]["tool_calls"] == [WEATHER] and not calls["done"]
    assert last["done"] and (last["eval_count"], last["eval_duration"]) == (9, 6)


def test_an_error_event_becomes_the_ollama_error_line() -> None:
    translator = StreamTranslator("generate", "m")
    assert translator.feed({"error": {"type": "engine_error", "message": "boom"}}, 0) == [{"error": "boom"}]
    assert translator.failed


def test_created_at_is_rfc3339_utc() -> None:
    assert created_at(0) == "1970-01-01T00:00:00.000Z"


def test_created_at_matches_the_calendar() -> None:
    for ms in (951_782_400_000, 4_107_542_399_999, 1_709_164_800_500, 1_767_225_599_999):  # leap days, year ends
        expected = dt.datetime.fromtimestamp(ms / 1000, tz=dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S")
        assert created_at(ms) == f"{expected}.{ms % 1000:03d}Z"
