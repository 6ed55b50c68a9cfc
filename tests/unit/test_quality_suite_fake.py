"""The frozen quality suite on the fake LM: the plumbing of the default optimizer, per task.

For every task of ``tests/bench/suite`` (routing, extraction, QA shapes): the default optimizer
compiles with no LM calls; when the label is a class, its fixed demos cover every class present
and its label model (the cascade) is saved, loaded and served with the program; its retrieval
index is saved in the program state, loaded into a new program, served through a
hot reload and answers as the compiled program did; and ``quality.py``'s row runs it through
``DSPyAgent`` on a small named subset. (The real-model figures: ``quality.py --suite``.)
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import dspy
import pytest

from dspy_flywheel.compile.cascade import STATE_KEY as CASCADE_KEY
from dspy_flywheel.compile.catalog import DEFAULT_OPTIMIZER, create_optimizer
from dspy_flywheel.compile.compiler import compile_program, load_state_into
from dspy_flywheel.compile.judge import label_fields
from dspy_flywheel.compile.retrieval import STATE_KEY
from dspy_flywheel.compile.signature import signature_of
from dspy_flywheel.compile.strategies import classes_of, is_categorical
from dspy_flywheel.lm import engine_stats, make_lm
from dspy_flywheel.lm._convert import ChatMessage
from dspy_flywheel.sdk.programs import ProgramSlot
from tests.bench.quality_lib.options import parse_options
from tests.bench.quality_lib.row import load_task, measure_row
from tests.bench.quality_lib.suite import suite_options
from tests.fixtures.fake_lm import FakeEngine
from tests.fixtures.retrieval import has_retrieval

SUITE = Path(__file__).parents[1] / "bench" / "suite"
TASKS = {t.task_label: t for t in suite_options(parse_options(["--suite", str(SUITE)]))}


def copy_closest(messages: list[ChatMessage]) -> str:
    """A "model" that answers what the last demo (for retrieval, the closest row) answered."""
    answers = [m["content"] for m in messages if m["role"] == "assistant"]
    assert answers, "the default optimizer always shows demos"
    return answers[-1]


def _factory(task: Any) -> Callable[[], Any]:
    """A worker's program class for the task: one predictor, as a user would write it."""
    signature = task.dspy_signature()

    class Program(dspy.Module):  # type: ignore[misc]  # dspy is untyped
        def __init__(self) -> None:
            super().__init__()
            self.predict = dspy.Predict(signature)

        def forward(self, **inputs: Any) -> Any:
            return self.predict(**inputs)

    return Program


@pytest.mark.parametrize("name", sorted(TASKS))
def test_default_optimizer_plumbing_on_every_suite_task(name: str) -> None:
    options = TASKS[name]
    task = load_task(options)
    split = task.split(options.seed, train=options.train, dev=options.dev, test=options.test)
    engine = FakeEngine(copy_closest)
    lm = make_lm(engine)
    make_program = _factory(task)
    optimizer = create_optimizer(DEFAULT_OPTIMIZER, metric=task.metric)
    compiled = compile_program(make_program(), split.train, optimizer)
    assert engine_stats(lm).calls == 0  # learns from the labeled rows, no LM calls

    labels = label_fields(list(task.output_fields))
    groups = classes_of(list(split.train), labels)
    shown = {tuple(str(d[f]).casefold() for f in labels) for d in compiled.predict.demos}
    if is_categorical(groups, len(split.train)):  # routing: every class present is shown
        assert shown == set(groups), name
    else:
        assert len(compiled.predict.demos) >= 1

    state = json.loads(json.dumps(compiled.dump_state()))  # what the registry stores
    assert len(state["predict"][STATE_KEY]["pool"]) == len(split.train)
    # a label model answers first where the output is a class, and travels with the state
    assert (CASCADE_KEY in state["predict"]) == is_categorical(groups, len(split.train)), name
    loaded = load_state_into(state, signature_of(make_program()), make_program())
    assert has_retrieval(loaded)
    assert (getattr(loaded.predict, "cascade", None) is not None) == (
        CASCADE_KEY in state["predict"]
    )

    slot = ProgramSlot(make_program, history_size=2)
    assert slot.offer(1, json.dumps(state), json.dumps(signature_of(make_program()))).status == (
        "serving"
    )
    served = slot.current.program
    assert has_retrieval(served)
    assert (getattr(served.predict, "cascade", None) is not None) == (
        CASCADE_KEY in state["predict"]
    )
    assert served is not compiled
    probe = split.test[:5]
    with dspy.context(lm=lm):
        expected = [dict(compiled(**ex.inputs()).items()) for ex in probe]
        assert [dict(loaded(**ex.inputs()).items()) for ex in probe] == expected
        assert [dict(served(**ex.inputs()).items()) for ex in probe] == expected
    # The closest training row differs per input: the retrieved demos follow the input.
    assert len({json.dumps(e, sort_keys=True) for e in expected}) > 1, name


@pytest.mark.parametrize("name", ["listing_moderation", "payment_notes", "policy_qa"])
def test_quality_row_runs_the_default_on_suite_tasks(name: str) -> None:
    options = parse_options(
        ["--suite", str(SUITE), "--only", name, "--test-limit", "6", "--heartbeat-s", "0"]
    )
    (task_options,) = suite_options(options)
    engine = FakeEngine(copy_closest)
    row = measure_row(task_options, DEFAULT_OPTIMIZER, make_lm=lambda: make_lm(engine))
    assert row.ok, row.error
    # The calls the default's label model is sure of (routing only) never reach the LM.
    task = load_task(task_options)
    split = task.split(
        task_options.seed, train=task_options.train, dev=task_options.dev, test=task_options.test
    )
    compiled = compile_program(
        _factory(task)(), split.train, create_optimizer(DEFAULT_OPTIMIZER, metric=task.metric)
    )
    cascade = getattr(compiled.predict, "cascade", None)
    sure = sum(cascade.answer(ex.inputs()) is not None for ex in split.test[:6]) if cascade else 0
    assert (cascade is not None) == (name == "listing_moderation")
    assert (row.test_n, row.compile_calls, row.eval_calls) == (6, 0, 6 - sure)
    assert row.demos > 0
    assert row.tokens > 0
