"""Translate between DSPy's canonical ``Request``/``Response`` and OpenAI-style chat dicts."""

from __future__ import annotations

from typing import Any

from dspy.lm15 import (
    InvalidRequestError,
    Message,
    Request,
    Response,
    TextPart,
    UnsupportedFeatureError,
    Usage,
)

ChatMessage = dict[str, str]

_ROLES = {"user": "user", "assistant": "assistant", "developer": "system", "system": "system"}


def _text_of(parts: Any) -> str:
    if isinstance(parts, str):
        return parts
    texts: list[str] = []
    for part in parts:
        if not isinstance(part, TextPart):
            raise UnsupportedFeatureError(
                f"the embedded LM takes text only, got a {type(part).__name__}"
            )
        texts.append(part.text)
    return "".join(texts)


def chat_messages(request: Request) -> list[ChatMessage]:
    """The request as a list of ``{"role", "content"}`` dicts, system first."""
    if request.tools:
        raise UnsupportedFeatureError("the embedded LM does not support tools")
    messages: list[ChatMessage] = []
    if request.system is not None:
        messages.append({"role": "system", "content": _text_of(request.system)})
    for message in request.messages:
        role = _ROLES.get(message.role)
        if role is None:
            raise UnsupportedFeatureError(f"the embedded LM cannot take a {message.role!r} message")
        messages.append({"role": role, "content": _text_of(message.parts)})
    return messages


def json_schema_of(response_format: dict[str, Any] | None) -> tuple[bool, dict[str, Any] | None]:
    """(wants_json, schema) from a canonical ``response_format``.

    DSPy's JSONAdapter sends ``{"type": "json_schema", "schema": {...}, "name", "strict"}``;
    the OpenAI spelling nests it under ``"json_schema"``; ``{"type": "json_object"}`` asks for
    any JSON object.
    """
    if not response_format:
        return False, None
    kind = response_format.get("type")
    if kind == "text":
        return False, None
    if kind not in ("json_schema", "json_object"):
        raise InvalidRequestError(f"unsupported response_format type {kind!r}")
    schema = response_format.get("schema")
    nested = response_format.get("json_schema")
    if schema is None and isinstance(nested, dict):
        schema = nested.get("schema")
    if schema is not None and not isinstance(schema, dict):
        raise InvalidRequestError("response_format schema must be a JSON object")
    return True, schema


def make_response(
    text: str,
    *,
    model: str,
    prompt_tokens: int,
    completion_tokens: int,
    finish_reason: str = "stop",
    response_id: str | None = None,
) -> Response:
    reason = finish_reason if finish_reason in ("stop", "length") else "stop"
    return Response(
        id=response_id or None,
        model=model,
        message=Message.assistant([TextPart(text)]),
        finish_reason=reason,
        usage=Usage(input_tokens=prompt_tokens, output_tokens=completion_tokens),
    )
