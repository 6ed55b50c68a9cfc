"""Workers for the end-to-end loop tests; importable by the optimizer's compile child.

The LM is ``tests.fixtures.fake_task:make_lm``: it answers a ticket right only when a
demo with the same label is in the prompt, so the code program (no demos) scores 0, and a
compiled program scores about the share of traffic whose label its demos show. The loops
assert a gain of 20 points on 40 calls, so every worker's settings must give demos of two
labels or more whatever the trainset (tests/unit/test_loop_workers.py checks it).
"""

from __future__ import annotations

from typing import Any

from dspy_flywheel.demo.worker import TicketRouter as DemoTicketRouter
from dspy_flywheel.demo.worker import label_match
from dspy_flywheel.sdk import dspy_worker_optimized
from tests.fixtures.fake_task import TicketRouter

TRIGGER: dict[str, Any] = {
    "threshold": 0.5,
    "window_size": 20,
    "min_examples": 20,
    "cooldown_seconds": 3600,
}


# BootstrapFewShot keeps the first 4 bootstraps in trainset order and fills up to
# max_labeled_demos with random labeled rows: with 4 and 4 it added none, and in 7 % of jobs
# the 4 bootstraps shared one label (live accuracy near 0.25, under the loops' +0.2 at times);
# 4 random labeled rows more make a single label a 1-in-3,000 event.
@dspy_worker_optimized(
    "loop-bfs",
    optimizer="BootstrapFewShot",
    optimization_trigger="performance",
    metric=label_match,
    max_bootstrapped_demos=4,
    max_labeled_demos=8,
    **TRIGGER,
)
class BFS(TicketRouter):
    pass


@dspy_worker_optimized(
    "loop-bfsrs",
    optimizer="BootstrapFewShotWithRandomSearch",
    optimization_trigger="performance",
    metric=label_match,
    max_bootstrapped_demos=4,
    max_labeled_demos=4,
    num_candidate_programs=3,
    **TRIGGER,
)
class BFSRS(TicketRouter):
    pass


@dspy_worker_optimized(
    "loop-mipro",
    optimizer="MIPROv2",
    optimization_trigger="performance",
    metric=label_match,
    auto="light",
    max_bootstrapped_demos=2,
    max_labeled_demos=4,
    **TRIGGER,
)
class MIPRO(TicketRouter):
    pass


@dspy_worker_optimized(  # no optimizer named: the catalog's default (RetrievalCascade)
    "loop-default", optimization_trigger="performance", metric=label_match, **TRIGGER
)
class Default(TicketRouter):
    pass


@dspy_worker_optimized(
    "real-router",
    optimizer="BootstrapFewShot",
    optimization_trigger="performance",
    metric=label_match,
    threshold=0.75,
    window_size=10,
    min_examples=10,
    cooldown_seconds=3600,
    max_bootstrapped_demos=2,
    max_labeled_demos=4,
)
class RealRouter(DemoTicketRouter.target):  # type: ignore[name-defined,misc]
    """The demo's ticket router on the real LM, with a CI-sized trigger."""


WORKERS = {
    "BootstrapFewShot": BFS,
    "BootstrapFewShotWithRandomSearch": BFSRS,
    "MIPROv2": MIPRO,
    "RetrievalCascade": Default,
}
