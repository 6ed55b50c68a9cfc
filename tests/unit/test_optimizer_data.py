"""Dataset split, expected outputs from labels, the default metric and the gate."""

from __future__ import annotations

import random

import dspy
import pytest

from dspy_flywheel.compile.examples import expected_outputs
from dspy_flywheel.compile.gate import GateConfig, decide_holdout
from dspy_flywheel.compile.judge import exact_match, normalize
from dspy_flywheel.optimizer.dataset import split
from dspy_flywheel.optimizer.errors import DatasetTooSmall
from dspy_flywheel.optimizer.spec import DataRow


def rows(n: int) -> list[DataRow]:
    return [DataRow(id=f"e{i}", inputs={"text": str(i)}, label={"label": "x"}) for i in range(n)]


def ids(parts: list[DataRow]) -> list[str]:
    return [r.id for r in parts]


def test_split_is_deterministic_and_order_independent() -> None:
    data = rows(50)
    a = split(data, seed=7, train_fraction=0.6, val_fraction=0.2, min_examples=10)
    shuffled = data[:]
    random.Random(1).shuffle(shuffled)
    b = split(shuffled, seed=7, train_fraction=0.6, val_fraction=0.2, min_examples=10)
    assert (ids(a.train), ids(a.val), ids(a.holdout)) == (ids(b.train), ids(b.val), ids(b.holdout))
    assert a.sizes() == {"train": 30, "val": 10, "holdout": 10}
    assert not set(ids(a.train)) & set(ids(a.holdout))
    c = split(data, seed=8, train_fraction=0.6, val_fraction=0.2, min_examples=10)
    assert ids(c.holdout) != ids(a.holdout)


def test_split_keeps_a_holdout_on_tiny_sets_and_dedupes() -> None:
    parts = split(rows(3) + rows(3), seed=1, train_fraction=0.6, val_fraction=0.4, min_examples=2)
    assert len(parts.train) >= 1
    assert len(parts.holdout) >= 1
    assert sum(parts.sizes().values()) == 3


def test_split_refuses_small_datasets_with_reason() -> None:
    with pytest.raises(DatasetTooSmall) as err:
        split(rows(7), seed=1, train_fraction=0.6, val_fraction=0.2, min_examples=20)
    assert str(err.value) == "dataset too small: 7 usable examples, at least 20 needed"


@pytest.mark.parametrize(
    ("outputs", "label", "fields", "expected"),
    [
        (None, {"label": "billing"}, ["label"], {"label": "billing"}),
        (None, '{"label": "billing"}', ["label"], {"label": "billing"}),
        (None, "billing", ["team"], {"team": "billing"}),
        (None, {"label": "billing"}, ["team"], {"team": "billing"}),
        ({"team": "bug"}, None, ["team"], {"team": "bug"}),
        ({"team": "bug"}, {"team": "account"}, ["team"], {"team": "account"}),
        (None, {"a": 1, "b": 2}, ["team"], None),
        ({"other": 1}, None, ["team"], None),
        (None, "x", ["a", "b"], None),
    ],
)
def test_expected_outputs(
    outputs: dict[str, object] | None,
    label: object,
    fields: list[str],
    expected: dict[str, object] | None,
) -> None:
    assert expected_outputs(outputs, label, fields) == expected


def test_exact_match_normalizes() -> None:
    example = dspy.Example(text="t", label="Billing").with_inputs("text")
    assert normalize('  "Billing."  ') == "billing"
    assert exact_match(example, dspy.Prediction(label=" billing ")) == 1.0
    assert exact_match(example, dspy.Prediction(label="bug")) == 0.0
    assert exact_match(example, dspy.Prediction(other="billing")) == 0.0
    two = dspy.Example(text="t", a="x", b="y").with_inputs("text")
    assert exact_match(two, dspy.Prediction(a="x", b="Y")) == 1.0
    assert exact_match(two, dspy.Prediction(a="x", b="z")) == 0.0


def test_gate_pairs_the_examples_and_tests_the_margin() -> None:
    config = GateConfig(min_holdout=10)
    current = [1.0] * 30 + [0.0] * 20
    better = [1.0] * 30 + [1.0] * 15 + [0.0] * 5  # 15 won, 0 lost: +30 pts
    assert decide_holdout(current, better, config).publish
    assert not decide_holdout(current, better, GateConfig(margin=0.3, min_holdout=10)).publish
    swapped = [0.0] * 15 + [1.0] * 15 + [1.0] * 15 + [0.0] * 5  # 15 won, 15 lost: no gain
    assert not decide_holdout(current, swapped, config).publish
    assert not decide_holdout(current, current, config).publish
    assert "not better" in decide_holdout(current, current, config).reason
    assert "below the minimum of 10" in decide_holdout([1.0] * 9, [1.0] * 9, config).reason
    # a metric score counts as correct from 0.5, as everywhere (compile.judge)
    small = decide_holdout([0.4, 0.5, 0.9] * 4, [0.6, 0.49, 1.0] * 4, config)
    assert (small.b, small.c) == (4, 4)
