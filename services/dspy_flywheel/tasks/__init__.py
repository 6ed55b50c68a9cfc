"""Benchmark tasks: built-in (``get_task("classification")``) or any JSONL with a signature.

    task = get_task("classification")
    split = task.split(seed=0, train=32, dev=32)            # test: the remaining 104
    program = dspy.Predict(task.dspy_signature())
    score = task.metric(example, program(**example.inputs()))

    task = load_jsonl_task("qa.jsonl", "context, question -> answer", metric="f1")

``tests/bench/quality.py`` runs optimizers over these tasks.
"""

from dspy_flywheel.tasks.builtin import BUILTIN_TASKS, get_task, task_names
from dspy_flywheel.tasks.metrics import exact_match, make_metric, normalize, token_f1
from dspy_flywheel.tasks.task import Split, Task, load_jsonl_task, parse_signature

__all__ = [
    "BUILTIN_TASKS", "Split", "Task", "exact_match", "get_task", "load_jsonl_task", "make_metric",
    "normalize", "parse_signature", "task_names", "token_f1",
]  # fmt: skip
