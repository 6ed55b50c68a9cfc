"""A fake LM for gate and canary tests: which tickets each program gets right is set by the test.

Tickets come from ``fake_task.tickets`` and carry a number (``ticket 1017``). A program with
few-shot demos in its prompt (an optimized candidate) and one without (the code's program)
answer by these environment variables, read at every call (so a child process or a running
worker can be steered):

- ``FLYWHEEL_TEST_WON``: numbers only the program *with* demos gets right;
- ``FLYWHEEL_TEST_LOST``: numbers only the program *without* demos gets right;
- every other ticket: both right.

``paired_lm`` is the ``lm_ref`` (``tests.integration.paired_lm:paired_lm``).
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from typing import Any

import dspy

from dspy_flywheel.lm import FakeEngine, demo_count, input_fields, make_lm
from dspy_flywheel.lm._convert import ChatMessage
from dspy_flywheel.optimizer.fake_task import true_label

_NUMBER = re.compile(r"\b(\d{4,})\b")


def ticket_number(text: str) -> int:
    found = _NUMBER.search(text)
    if found is None:
        raise ValueError(f"no ticket number in {text!r}")
    return int(found.group(1))


def _numbers(var: str) -> set[int]:
    return {int(x) for x in os.environ.get(var, "").split(",") if x.strip()}


def _respond(messages: list[ChatMessage]) -> Mapping[str, Any]:
    text = input_fields(messages).get("text", "")
    n = ticket_number(text)
    with_demos = demo_count(messages) > 0
    right = with_demos if n in _numbers("FLYWHEEL_TEST_WON") else True
    if n in _numbers("FLYWHEEL_TEST_LOST"):
        right = not with_demos
    return {"label": (true_label(text) or "unknown") if right else "unknown"}


def paired_lm() -> dspy.LM:
    return make_lm(FakeEngine(_respond), name="fake/paired")
