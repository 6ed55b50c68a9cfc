"""A task: a signature, labeled examples and a metric, split by seed into train/dev/test."""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from pathlib import Path

import dspy

from dspy_flywheel.tasks.metrics import Metric, make_metric


def parse_signature(signature: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """'in1, in2 -> out' -> (('in1', 'in2'), ('out',)); typed fields as DSPy reads them
    ('ticket: str -> queue: Literal["billing", "technical"]'). Raises ValueError on a bad string."""
    left, arrow, right = signature.partition("->")
    if ":" in signature:  # typed: DSPy's own parser knows annotations with commas inside
        try:
            parsed = dspy.Signature(signature)
        except Exception as exc:  # DSPy raises ValueError, SyntaxError or TypeError here
            raise ValueError(f"cannot read typed signature {signature!r}: {exc}") from exc
        inputs, outputs = tuple(parsed.input_fields), tuple(parsed.output_fields)
    else:
        inputs = tuple(name.strip() for name in left.split(",") if name.strip())
        outputs = tuple(name.strip() for name in right.split(",") if name.strip())
    names = inputs + outputs
    if not arrow or not inputs or not outputs or not all(n.isidentifier() for n in names):
        raise ValueError(f"signature must look like 'in1, in2 -> out', got {signature!r}")
    if len(set(names)) != len(names):
        raise ValueError(f"signature repeats a field name: {signature!r}")
    return inputs, outputs


@dataclass(frozen=True, slots=True)
class Split:
    train: list[dspy.Example]
    dev: list[dspy.Example]
    test: list[dspy.Example]


@dataclass(frozen=True)
class Task:
    name: str
    signature: str
    examples: tuple[dspy.Example, ...]
    metric: Metric
    metric_kind: str = "exact"
    instructions: str | None = None

    @property
    def input_fields(self) -> tuple[str, ...]:
        return parse_signature(self.signature)[0]

    @property
    def output_fields(self) -> tuple[str, ...]:
        return parse_signature(self.signature)[1]

    def dspy_signature(self) -> type[dspy.Signature]:
        """The signature class for ``dspy.Predict``, with the task's instructions if any."""
        signature: type[dspy.Signature] = dspy.Signature(self.signature, self.instructions)
        return signature

    def split(
        self, seed: int = 0, *, train: int = 32, dev: int = 32, test: int | None = None
    ) -> Split:
        """Shuffle by ``seed`` and cut; ``test=None`` takes every remaining example."""
        total = len(self.examples)
        test = total - train - dev if test is None else test
        if min(train, dev, test) < 0 or train + dev + test > total:
            raise ValueError(
                f"{self.name}: cannot split {total} examples into {train}/{dev}/{test}"
            )
        shuffled = list(self.examples)
        random.Random(seed).shuffle(shuffled)
        return Split(
            train=shuffled[:train],
            dev=shuffled[train : train + dev],
            test=shuffled[train + dev : train + dev + test],
        )


def _metric(kind: str, outputs: tuple[str, ...]) -> Metric:
    if ":" in kind:  # a user's metric, by reference
        from dspy_flywheel.compile.refs import load_metric

        found = load_metric(kind)
        assert found is not None  # a non-empty ref loads or raises RefError
        return found
    return make_metric(kind, outputs)


def load_jsonl_task(
    path: str | Path,
    signature: str,
    *,
    metric: str = "exact",
    name: str | None = None,
    instructions: str | None = None,
) -> Task:
    """A task from a JSONL file whose rows hold every field of ``signature`` (extra keys kept).

    ``metric`` is ``exact``, ``f1`` or a ``module:attr`` reference to the user's own metric."""
    inputs, outputs = parse_signature(signature)
    path = Path(path)
    examples: list[dspy.Example] = []
    with path.open(encoding="utf-8") as lines:
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise ValueError(f"{path}:{number}: not JSON: {exc}") from exc
            if not isinstance(row, dict):
                raise ValueError(f"{path}:{number}: a row must be a JSON object")
            missing = [f for f in inputs + outputs if row.get(f) is None]
            if missing:
                raise ValueError(f"{path}:{number}: missing field(s) {', '.join(missing)}")
            values = {
                key: (value if isinstance(value, str) else json.dumps(value))
                for key, value in row.items()
            }
            examples.append(dspy.Example(**values).with_inputs(*inputs))
    if not examples:
        raise ValueError(f"{path}: no examples")
    return Task(
        name=name or path.stem,
        signature=signature,
        examples=tuple(examples),
        metric=_metric(metric, outputs),
        metric_kind=metric,
        instructions=instructions,
    )
