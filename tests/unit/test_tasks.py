"""Built-in tasks: size, correctness of every label, splits, metrics; external JSONL loading."""

from __future__ import annotations

import ast
import json
import operator
from collections import Counter
from pathlib import Path

import dspy
import pytest

from tests.fixtures.tasks import (
    exact_match,
    get_task,
    load_jsonl_task,
    make_metric,
    normalize,
    parse_signature,
    task_names,
    token_f1,
)

LABELS = {"billing", "technical", "account", "shipping"}
_OPS = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv,
    ast.Pow: operator.pow,
}


def evaluate(expression: str) -> float:
    """Arithmetic only: numbers, + - * / // ** and parentheses."""

    def walk(node: ast.AST) -> float:
        if isinstance(node, ast.Expression):
            return walk(node.body)
        if isinstance(node, ast.Constant) and isinstance(node.value, int | float):
            return node.value
        if isinstance(node, ast.BinOp) and type(node.op) in _OPS:
            return float(_OPS[type(node.op)](walk(node.left), walk(node.right)))
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
            return -walk(node.operand)
        raise ValueError(f"not arithmetic: {ast.dump(node)}")

    return walk(ast.parse(expression, mode="eval"))


def test_three_builtin_tasks_of_150_or_more_unique_examples() -> None:
    assert task_names() == ["classification", "extraction", "reasoning"]
    for name in task_names():
        task = get_task(name)
        inputs = [ex[task.input_fields[0]] for ex in task.examples]
        assert len(task.examples) >= 150, name
        assert len(set(inputs)) == len(inputs), f"{name} has duplicate inputs"
        assert all(set(ex.inputs().keys()) == set(task.input_fields) for ex in task.examples)
        assert task.split(seed=0).test.__len__() >= 50


def test_classification_labels_are_valid_and_balanced() -> None:
    task = get_task("classification")
    counts = Counter(ex.label for ex in task.examples)
    assert set(counts) == LABELS
    assert max(counts.values()) - min(counts.values()) <= 4
    assert all(len(ex.ticket.split()) >= 3 for ex in task.examples)


def test_every_extraction_answer_appears_in_its_message() -> None:
    task = get_task("extraction")
    for ex in task.examples:
        assert ex.order_id in ex.message, ex.message
        assert not ex.order_id.startswith("#")


def test_every_reasoning_answer_equals_its_worked_arithmetic() -> None:
    task = get_task("reasoning")
    for ex in task.examples:
        value = evaluate(ex.work)
        assert value == int(value), ex.question
        assert ex.answer == str(int(value)), ex.question


def test_split_is_deterministic_disjoint_and_sized() -> None:
    task = get_task("classification")
    first = task.split(seed=1, train=16, dev=32)
    again = task.split(seed=1, train=16, dev=32)
    other = task.split(seed=2, train=16, dev=32)
    assert [ex.ticket for ex in first.train] == [ex.ticket for ex in again.train]
    assert [ex.ticket for ex in first.train] != [ex.ticket for ex in other.train]
    assert (len(first.train), len(first.dev), len(first.test)) == (16, 32, len(task.examples) - 48)
    parts = [{ex.ticket for ex in part} for part in (first.train, first.dev, first.test)]
    assert not (parts[0] & parts[1])
    assert not (parts[0] & parts[2])
    assert not (parts[1] & parts[2])
    assert len(task.split(seed=1, train=10, dev=10, test=50).test) == 50
    with pytest.raises(ValueError, match="cannot split"):
        task.split(seed=0, train=100, dev=100)


def test_unknown_task_lists_the_names() -> None:
    with pytest.raises(KeyError, match="classification"):
        get_task("sentiment")


@pytest.mark.parametrize(
    ("gold", "predicted"),
    [
        ("billing", " Billing. "),
        ("48213", "#48213"),
        ("1200", "$1,200"),
        ("42", "42.0"),
        ("ORD-2024-00917", '"ord-2024-00917"'),
        ("technical", "`technical`"),
    ],
)
def test_exact_match_normalizes_case_punctuation_and_numbers(gold: str, predicted: str) -> None:
    assert exact_match(gold, predicted) == 1.0


@pytest.mark.parametrize(
    ("gold", "predicted"), [("billing", "billing issue"), ("48213", "48231"), ("12", "1.2")]
)
def test_exact_match_rejects_different_answers(gold: str, predicted: str) -> None:
    assert exact_match(gold, predicted) == 0.0


def test_token_f1_scores_partial_overlap() -> None:
    assert token_f1("New York City", "new york") == pytest.approx(0.8)
    assert token_f1("Paris", "the Paris") == 1.0
    assert token_f1("Paris", "London") == 0.0
    assert normalize("  A   b ") == "a b"


def test_metric_scores_for_evaluation_and_accepts_for_bootstrapping() -> None:
    task = get_task("classification")
    example = next(ex for ex in task.examples if ex.label == "billing")
    assert task.metric(example, dspy.Prediction(label="Billing")) == 1.0
    assert task.metric(example, dspy.Prediction(label="finance")) == 0.0
    assert task.metric(example, dspy.Prediction(label=None)) == 0.0
    f1 = make_metric("f1", ["answer"])
    gold = dspy.Example(answer="new york city")
    assert f1(gold, dspy.Prediction(answer="new york")) == pytest.approx(0.8)
    assert f1(gold, dspy.Prediction(answer="new york"), trace=[]) is True
    assert f1(gold, dspy.Prediction(answer="boston"), trace=[]) is False
    with pytest.raises(ValueError, match="exact"):
        make_metric("bleu", ["answer"])


def test_program_runs_on_a_task_signature() -> None:
    from dspy_flywheel.lm import make_lm
    from tests.fixtures.fake_lm import FakeEngine, input_fields

    task = get_task("classification")
    truth = {ex.ticket: ex.label for ex in task.examples}
    lm = make_lm(FakeEngine(lambda m: {"label": truth[input_fields(m)["ticket"]]}))
    program = dspy.Predict(task.dspy_signature())
    assert "Route the customer support ticket" in program.signature.instructions
    with dspy.context(lm=lm):
        scores = [task.metric(ex, program(**ex.inputs())) for ex in task.split(0).test[:10]]
    assert scores == [1.0] * 10


def write_jsonl(path: Path, rows: list[object]) -> Path:
    path.write_text("\n".join(json.dumps(row) for row in rows) + "\n\n")
    return path


def test_external_jsonl_with_two_inputs_and_f1(tmp_path: Path) -> None:
    rows = [
        {"context": f"c{i}", "question": f"q{i}", "answer": f"a {i}", "id": i} for i in range(60)
    ]
    task = load_jsonl_task(
        write_jsonl(tmp_path / "qa.jsonl", rows), "context, question -> answer", metric="f1"
    )
    assert task.name == "qa"
    assert (task.input_fields, task.output_fields) == (("context", "question"), ("answer",))
    assert task.metric_kind == "f1"
    example = task.examples[3]
    assert example.inputs().toDict() == {"context": "c3", "question": "q3"}
    assert example.id == "3"  # extra keys are kept, as strings
    assert task.metric(example, dspy.Prediction(answer="a 3")) == 1.0
    assert len(task.split(seed=0, train=5, dev=5).test) == 50


@pytest.mark.parametrize(
    ("content", "error"),
    [
        ('{"question": "q"}\n', "missing field"),
        ("not json\n", "not JSON"),
        ("[1, 2]\n", "JSON object"),
        ("\n", "no examples"),
    ],
)
def test_external_jsonl_problems_name_the_line(tmp_path: Path, content: str, error: str) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text(content)
    with pytest.raises(ValueError, match=error):
        load_jsonl_task(path, "question -> answer")


@pytest.mark.parametrize(
    "signature", ["question", "-> answer", "q ->", "a, a -> b", "q -> an swer"]
)
def test_bad_signatures_are_refused(signature: str) -> None:
    with pytest.raises(ValueError, match="signature"):
        parse_signature(signature)
