"""Labeled example sets shipped with the package (``tasks/data``), each at least 150
hand-written examples. The demo serves the classification tickets; the quality benchmarks add
splits and metrics to all three (``tests/fixtures/tasks.py``).

    classification  ticket -> label      support-ticket routing: billing|technical|account|shipping
    extraction      message -> order_id  the order number in a customer message, among distractors
    reasoning       question -> answer   short arithmetic word problems, integer answers

Zero-shot, the classification signature does not list the labels: a program learns them from
demos, which is the gain the optimizers are measured on.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any

import dspy

# name -> (signature, instructions)
BUILTIN_TASKS: dict[str, tuple[str, str]] = {
    "classification": (
        "ticket -> label",
        "Route the customer support ticket to the team that should handle it.",
    ),
    "extraction": ("message -> order_id", "Extract the order number from the customer's message."),
    "reasoning": (
        "question -> answer",
        "Solve the arithmetic word problem. Answer with the final number only.",
    ),
}


@dataclass(frozen=True, slots=True)
class BuiltinTask:
    name: str
    signature: str
    instructions: str
    examples: tuple[dspy.Example, ...]


def task_names() -> list[str]:
    return sorted(BUILTIN_TASKS)


def example_of(row: dict[str, Any], inputs: Sequence[str]) -> dspy.Example:
    """A JSONL row as a DSPy example: every key kept, values that are not text as JSON text."""
    values = {k: v if isinstance(v, str) else json.dumps(v) for k, v in row.items()}
    return dspy.Example(**values).with_inputs(*inputs)


@cache
def get_task(name: str) -> BuiltinTask:
    """A built-in task by name; raises KeyError listing the names on a miss."""
    if name not in BUILTIN_TASKS:
        raise KeyError(f"no built-in task {name!r}; choose one of {', '.join(task_names())}")
    signature, instructions = BUILTIN_TASKS[name]
    inputs = [f.strip() for f in signature.split("->")[0].split(",")]
    text = (resources.files(__name__) / "data" / f"{name}.jsonl").read_text(encoding="utf-8")
    rows = [json.loads(line) for line in text.splitlines() if line.strip()]
    return BuiltinTask(name, signature, instructions, tuple(example_of(r, inputs) for r in rows))
