"""A deterministic, scriptable engine for tests: no model, same protocol and counters.

    engine = FakeEngine(lambda messages: {"label": "billing"})
    lm = make_lm(engine)                      # dspy.LM; works with ChatAdapter and JSONAdapter

The responder gets the chat as ``[{"role", "content"}, ...]`` (system first, few-shot demos as
user/assistant pairs, the current input last) and returns either raw text, used verbatim, or a
mapping of output fields, formatted the way the calling adapter expects (JSON when the request
asks for JSON, ``[[ ## field ## ]]`` sections otherwise). ``input_fields`` and ``demo_count``
help a responder read the prompt.
"""

from __future__ import annotations

import json
import random
import re
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Mapping
from typing import Any, ClassVar

from dspy.clients.engines.base import validate_request
from dspy.lm15 import Request, Response, ServerError, response_to_events

from dspy_flywheel.lm._convert import ChatMessage, chat_messages, json_schema_of, make_response
from dspy_flywheel.lm.stats import EngineCounters

Responder = Callable[[list[ChatMessage]], "str | Mapping[str, Any]"]

_FIELD = re.compile(r"\[\[ ## (\w+) ## \]\]\n(.*?)(?=\n\n\[\[ ## |\n*\Z)", re.DOTALL)
_TRAILING_INSTRUCTION = re.compile(r"\n\nRespond with .*\Z", re.DOTALL)


def input_fields(messages: list[ChatMessage]) -> dict[str, str]:
    """The ``[[ ## name ## ]]`` values of the last user message (the current inputs)."""
    for message in reversed(messages):
        if message["role"] == "user":
            content = _TRAILING_INSTRUCTION.sub("", message["content"])
            return {name: value.strip() for name, value in _FIELD.findall(content)}
    return {}


def demo_count(messages: list[ChatMessage]) -> int:
    """How many few-shot demos precede the current input (one assistant turn each)."""
    return sum(1 for message in messages if message["role"] == "assistant")


def format_fields(fields: Mapping[str, Any], *, as_json: bool) -> str:
    """Output fields as DSPy's JSONAdapter or ChatAdapter expects to parse them."""
    if as_json:
        return json.dumps(dict(fields))
    sections = [f"[[ ## {name} ## ]]\n{value}" for name, value in fields.items()]
    return "\n\n".join([*sections, "[[ ## completed ## ]]"])


def learning_responder(
    answer: Callable[[dict[str, str]], Mapping[str, Any]],
    *,
    untrained: Mapping[str, Any],
    min_demos: int = 1,
) -> Responder:
    """A model that "learns" from demos: ``untrained`` without them, ``answer(inputs)`` with at
    least ``min_demos`` — so an optimizer's compiled program measurably beats the baseline."""

    def respond(messages: list[ChatMessage]) -> Mapping[str, Any]:
        if demo_count(messages) >= min_demos:
            return answer(input_fields(messages))
        return untrained

    return respond


def count_tokens(text: str) -> int:
    """A stand-in tokenizer: whitespace-separated words."""
    return len(text.split())


class FakeEngine:
    """Deterministic engine: ``responder`` decides the answer; optional latency and faults.

    ``error_rate`` in [0, 1] makes that share of calls raise ``dspy.lm15.ServerError``
    (a transient error DSPy would retry), drawn from a generator seeded by ``seed``.
    """

    supports_response_schema: ClassVar[bool] = True
    supports_function_calling: ClassVar[bool] = False
    supports_reasoning: ClassVar[bool] = False
    supported_params: ClassVar[frozenset[str]] = frozenset(
        {"temperature", "max_tokens", "top_p", "stop", "seed", "response_format"}
    )

    def __init__(
        self,
        responder: Responder | None = None,
        *,
        latency_s: float = 0.0,
        error_rate: float = 0.0,
        seed: int = 0,
        model: str = "fake",
    ) -> None:
        if not 0.0 <= error_rate <= 1.0:
            raise ValueError("error_rate must be within [0, 1]")
        if latency_s < 0:
            raise ValueError("latency_s must be >= 0")
        self.responder: Responder = responder or (lambda _messages: "")
        self.latency_s = latency_s
        self.error_rate = error_rate
        self.model = model
        self.counters = EngineCounters()
        self.requests: deque[list[ChatMessage]] = deque(maxlen=1000)  # the latest prompts
        self.last_request: Request | None = None
        self._random = random.Random(seed)
        self._lock = threading.Lock()

    def complete(self, request: Request) -> Response:
        validate_request(request)
        messages = chat_messages(request)
        wants_json, _schema = json_schema_of(request.config.response_format)
        with self._lock:
            self.requests.append(messages)
            self.last_request = request
            fail = self.error_rate > 0 and self._random.random() < self.error_rate
        if self.latency_s:
            time.sleep(self.latency_s)
        if fail:
            self.counters.record_error()
            raise ServerError("injected fault", provider="fake", status=503)
        try:
            answer = self.responder(messages)
        except Exception:
            self.counters.record_error()
            raise
        text = answer if isinstance(answer, str) else format_fields(answer, as_json=wants_json)
        prompt_tokens = sum(count_tokens(m["content"]) for m in messages)
        completion_tokens = count_tokens(text)
        self.counters.record_call(prompt_tokens, completion_tokens)
        return make_response(
            text, model=self.model, prompt_tokens=prompt_tokens, completion_tokens=completion_tokens
        )

    def stream(self, request: Request) -> Iterator[Any]:
        return iter(response_to_events(self.complete(request)))

    def close(self) -> None:
        pass
