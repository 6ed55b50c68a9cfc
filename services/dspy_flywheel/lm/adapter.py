"""The DSPy adapter every flywheel process calls its LM with (``configure_lm``).

DSPy's ``ChatAdapter`` expects each output field's value after its ``[[ ## name ## ]]`` header.
The embedded Qwen2.5-Coder-1.5B writes it inline as an assignment instead,
``[[ ## label ## ]] = 'technical'``: ChatAdapter reads ``= 'technical'``, which is no valid
``Literal`` value, and re-sends the whole call through ``JSONAdapter`` (on the demo's traffic
29 of 44 zero-shot calls cost two full prompts). ``InlineChatAdapter`` reads that form as the
value it assigns; the prompt is ChatAdapter's, unchanged, and any other malformed answer still
falls back to JSONAdapter.

Calling the embedded model through ``JSONAdapter`` instead (llama.cpp holds the answer to the
schema as a grammar) was measured and dropped: grammar sampling over Qwen's 151k-token
vocabulary took up to 1 s per generated token on 2 loaded cores (the demo's job 504 s instead
of 331 s), and in that run the gate rejected the candidate (+9.7 pts, p=0.19, n=31;
tests/bench/results/demo_session8_json.txt).
"""

from __future__ import annotations

import re
from typing import Any

import dspy

# a field header, then on the same line "= value" or ": value", the value maybe quoted
_INLINE = re.compile(
    r"^(?P<header>\s*\[\[ ## \w+ ## \]\])[ \t]*[=:][ \t]*"
    r"(?:(?P<quote>['\"])(?P<quoted>.*)(?P=quote)|(?P<bare>.*?))[ \t]*$",
    re.MULTILINE,
)


def _own_line(match: re.Match[str]) -> str:
    value = match.group("quoted") if match.group("quote") else match.group("bare")
    return f"{match.group('header')}\n{value}"


def unassign(completion: str) -> str:
    """``completion`` with each inline ``[[ ## field ## ]] = 'value'`` as the header and the
    value on its own line, the form ChatAdapter parses."""
    return _INLINE.sub(_own_line, completion)


class InlineChatAdapter(dspy.ChatAdapter):  # type: ignore[misc]  # dspy ships no type hints
    """``ChatAdapter`` that also reads values assigned inline after the field header."""

    def parse(self, signature: Any, completion: str) -> dict[str, Any]:
        parsed: dict[str, Any] = super().parse(signature, unassign(completion))
        return parsed
