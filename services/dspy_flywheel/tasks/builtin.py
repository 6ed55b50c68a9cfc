"""The built-in tasks, each at least 150 hand-written examples under ``tasks/data``.

    classification  ticket -> label      support-ticket routing: billing|technical|account|shipping
    extraction      message -> order_id  the order number in a customer message, among distractors
    reasoning       question -> answer   short arithmetic word problems, integer answers

Zero-shot, the classification signature does not list the labels: a program learns them from
demos, which is the gain the optimizers are measured on.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from importlib import resources

from dspy_flywheel.tasks.task import Task, load_jsonl_task


@dataclass(frozen=True, slots=True)
class _Spec:
    signature: str
    instructions: str
    metric: str = "exact"


BUILTIN_TASKS: dict[str, _Spec] = {
    "classification": _Spec(
        "ticket -> label", "Route the customer support ticket to the team that should handle it."
    ),
    "extraction": _Spec(
        "message -> order_id", "Extract the order number from the customer's message."
    ),
    "reasoning": _Spec(
        "question -> answer",
        "Solve the arithmetic word problem. Answer with the final number only.",
    ),
}


def task_names() -> list[str]:
    return sorted(BUILTIN_TASKS)


@cache
def get_task(name: str) -> Task:
    """A built-in task by name; raises KeyError listing the names on a miss."""
    spec = BUILTIN_TASKS.get(name)
    if spec is None:
        raise KeyError(f"no built-in task {name!r}; choose one of {', '.join(task_names())}")
    data = resources.files("dspy_flywheel.tasks") / "data" / f"{name}.jsonl"
    with resources.as_file(data) as path:
        return load_jsonl_task(
            path, spec.signature, metric=spec.metric, name=name, instructions=spec.instructions
        )
