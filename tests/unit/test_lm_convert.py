"""DSPy requests mapped onto llama.cpp request bodies; llama.cpp errors mapped back."""

from __future__ import annotations

import pytest
from dspy.lm15 import (
    Config,
    ContextLengthError,
    InvalidRequestError,
    Message,
    Request,
    ServerError,
    UnsupportedFeatureError,
)

from dspy_flywheel.lm._convert import chat_messages, json_schema_of
from dspy_flywheel.lm.embedded import EmbeddedConfig, error_from_result, request_body

SCHEMA = {"type": "object", "properties": {"label": {"type": "string"}}, "required": ["label"]}
CONFIG = EmbeddedConfig(model_path="/models/x.gguf", max_tokens=300, seed=7)


def request(**config: object) -> Request:
    return Request(
        model="x",
        messages=(Message.user("hi"), Message.assistant("hello"), Message.user("route this")),
        system="You route tickets.",
        config=Config(**config),  # type: ignore[arg-type]
    )


def test_messages_keep_order_with_system_first() -> None:
    assert chat_messages(request()) == [
        {"role": "system", "content": "You route tickets."},
        {"role": "user", "content": "hi"},
        {"role": "assistant", "content": "hello"},
        {"role": "user", "content": "route this"},
    ]


def test_defaults_come_from_the_engine_config() -> None:
    body = request_body(request(), CONFIG)
    assert body["max_tokens"] == 300
    assert body["temperature"] == 0.0
    assert body["seed"] == 7
    assert "json_schema" not in body
    assert "response_format" not in body


def test_request_settings_override_defaults() -> None:
    body = request_body(request(max_tokens=20, temperature=0.7, stop=("\n\n",), top_p=0.9), CONFIG)
    assert (body["max_tokens"], body["temperature"], body["top_p"]) == (20, 0.7, 0.9)
    assert body["stop"] == ["\n\n"]


def test_dspy_json_schema_becomes_a_llama_cpp_json_schema() -> None:
    fmt = {"type": "json_schema", "schema": SCHEMA, "name": "DSPyProgramOutputs", "strict": True}
    assert request_body(request(response_format=fmt), CONFIG)["json_schema"] == SCHEMA


def test_openai_nested_schema_and_plain_json_mode() -> None:
    nested = {"type": "json_schema", "json_schema": {"name": "x", "schema": SCHEMA}}
    assert json_schema_of(nested) == (True, SCHEMA)
    body = request_body(request(response_format={"type": "json_object"}), CONFIG)
    assert body["response_format"] == {"type": "json_object"}
    assert json_schema_of({"type": "text"}) == (False, None)
    with pytest.raises(InvalidRequestError):
        json_schema_of({"type": "xml"})


def test_tools_are_unsupported() -> None:
    from dspy.lm15 import FunctionTool

    tool = FunctionTool(name="lookup", description="d", parameters={"type": "object"})
    with pytest.raises(UnsupportedFeatureError):
        chat_messages(Request(model="x", messages=(Message.user("x"),), tools=(tool,)))


def test_llama_cpp_errors_map_to_dspy_errors() -> None:
    overflow = {
        "error": {
            "code": 400,
            "message": "request (431 tokens) exceeds",
            "type": "exceed_context_size_error",
        }
    }
    assert isinstance(error_from_result(overflow), ContextLengthError)
    assert "FLYWHEEL_LM_CTX" in str(error_from_result(overflow))
    bad = {"error": {"code": 400, "message": "bad", "type": "invalid_request_error"}}
    assert isinstance(error_from_result(bad), InvalidRequestError)
    assert isinstance(error_from_result({"error": {"code": 500, "message": "boom"}}), ServerError)
