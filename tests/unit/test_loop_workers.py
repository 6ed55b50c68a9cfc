"""The e2e loops' workers learn more than one label on the fake LM, whatever the trainset.

The fake LM answers a ticket right only when a demo in the prompt carries its label, so a
compiled program that learned one label of four scores near 0.25 live, within noise of the
loops' +0.2 check (tests/e2e: observability, fake, secure). Each worker's optimizer settings
are compiled here on many trainsets drawn as a job draws them; every program must answer
tickets of at least two labels right.
"""

from __future__ import annotations

import random

import dspy
import pytest

from dspy_flywheel.compile.catalog import create_optimizer
from dspy_flywheel.compile.compiler import compile_program
from dspy_flywheel.sdk.decorators import WorkerSpec
from tests.e2e.loop_worker import BFS, Default
from tests.fixtures.fake_task import KEYWORDS, LABELS, TicketRouter, make_lm, tickets

TRAINSETS = 60  # BootstrapFewShot with 4 bootstraps and no labeled rows fails some of these
TRAIN_SIZE = 90  # a job's train split: 60 % of the ~150 examples it waits for


def _trainset(seed: int) -> list[dspy.Example]:
    rows = random.Random(seed).sample(tickets(2000, seed=11), TRAIN_SIZE)
    return [
        dspy.Example(**t["inputs"], label=t["outputs"]["label"]).with_inputs("text") for t in rows
    ]


def _labels_learned(program: dspy.Module) -> set[str]:
    """The labels the program gets right on one ticket per keyword."""
    probes = {
        f"Please help: {kw} issue on order 7 (monday).": label for kw, label in KEYWORDS.items()
    }
    return {label for text, label in probes.items() if program(text=text).label.strip() == label}


@pytest.mark.parametrize("worker", [BFS, Default], ids=lambda w: w.worker_id)
def test_every_compiled_program_learns_two_labels(worker: WorkerSpec) -> None:
    config, metric = worker.optimization, worker.metric
    assert config is not None
    assert metric is not None
    lm = make_lm()
    learned: dict[int, set[str]] = {}
    with dspy.context(lm=lm):
        for seed in range(TRAINSETS):
            optimizer = create_optimizer(
                config.optimizer, metric=metric, lm=lm, **config.optimizer_params
            )
            program = compile_program(TicketRouter(), _trainset(seed), optimizer, lm=lm)
            learned[seed] = _labels_learned(program)
    narrow = {seed: sorted(labels) for seed, labels in learned.items() if len(labels) < 2}
    assert not narrow, f"{worker.worker_id}: programs that learned < 2 of {LABELS}: {narrow}"
