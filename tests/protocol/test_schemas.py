from __future__ import annotations

import pytest
from pydantic import ValidationError

from lobstah_core.protocol.schemas import Capacity, ChatCompletionRequest, JobRequest
from lobstah_core.protocol.wire import describe_validation_error

TOOLS = [
    {
        "type": "function",
        "function": {"name": "read_file", "parameters": {"type": "object", "properties": {}}},
    }
]


def test_chat_request_keeps_every_unknown_field() -> None:
    body = {
        "model": "demo-fast",
        "messages": [
            {"role": "system", "content": "be brief"},
            {"role": "user", "content": [{"type": "text", "text": "hi"}, {"type": "image_url", "image_url": {"url": "data:,"}}]},
            {"role": "assistant", "content": None, "tool_calls": [{"id": "c1", "type": "function"}]},
        ],
        "stream": True,
        "stream_options": {"include_usage": True},
        "tools": TOOLS,
        "tool_choice": "auto",
        "max_completion_tokens": 64,
        "response_format": {"type": "json_object"},
        "x_vendor": {"anything": [1, 2]},
    }
    request = ChatCompletionRequest.model_validate(body)
    assert request.stream and request.stream_options and request.stream_options.include_usage
    assert request.to_body() == body


@pytest.mark.parametrize(
    "body",
    [
        {"messages": [{"role": "user", "content": "x"}]},
        {"model": "", "messages": [{"role": "user", "content": "x"}]},
        {"model": "m", "messages": []},
        {"model": "m", "messages": [{"content": "x"}]},
        {"model": "m", "messages": [{"role": "user", "content": 5}]},
        {"model": "m", "messages": [{"role": "user", "content": "x"}], "stream": "yes"},
    ],
)
def test_chat_request_refuses_what_routing_cannot_use(body: dict) -> None:
    with pytest.raises(ValidationError):
        ChatCompletionRequest.model_validate(body)


def test_jobs_cannot_stream() -> None:
    with pytest.raises(ValidationError):
        JobRequest.model_validate({"model": "m", "messages": [{"role": "user", "content": "x"}], "stream": True})


def test_capacity_defaults_to_best_effort() -> None:
    capacity = Capacity.model_validate({"pubkey": "lob1" + "ab" * 32, "models": ["m"], "queueDepth": 0})
    assert capacity.tier == "best-effort"


@pytest.mark.parametrize("field", ['"temperature":NaN', '"temperature":"hot"', '"temperature":3', '"top_p":1.5',
                                   '"seed":1e99999', '"seed":1.5', '"stop":5', '"stop":[1]', '"tools":"x"',
                                   '"max_tokens":0', '"n":0', '"stream":"yes"'])
def test_sampling_fields_out_of_bounds_are_refused(field: str) -> None:
    raw = '{"model":"m","messages":[{"role":"user","content":"x"}],' + field + "}"
    with pytest.raises(ValidationError):
        ChatCompletionRequest.model_validate_json(raw)


def test_sampling_fields_pass_through_as_sent() -> None:
    raw = '{"model":"m","messages":[{"role":"user","content":"x"}],"temperature":1,"top_p":0.9,"stop":"\\n","seed":7,"x_vendor":[1]}'
    body = ChatCompletionRequest.model_validate_json(raw).to_body()
    assert body["temperature"] == 1 and isinstance(body["temperature"], int)
    assert (body["top_p"], body["stop"], body["seed"], body["x_vendor"]) == (0.9, "\n", 7, [1])


@pytest.mark.parametrize("field, message", [
    ('"temperature":"hot"', "temperature: Input should be a valid number"),  # not "a valid integer"
    ('"stop":5', "stop: Input should be a valid string or a valid array"),  # both shapes it may take
    ('"messages":[{"role":"user","content":5}]', "messages.0.content: Input should be a valid string or a valid array"),
])
def test_a_refusal_names_every_shape_the_field_may_take(field: str, message: str) -> None:
    raw = '{"model":"m","messages":[{"role":"user","content":"x"}],' + field + "}"
    with pytest.raises(ValidationError) as refused:
        ChatCompletionRequest.model_validate_json(raw.replace('"messages":[{"role":"user","content":"x"}],"messages"', '"messages"'))
    assert describe_validation_error(refused.value).startswith(message)
