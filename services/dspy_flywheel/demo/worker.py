"""The demo worker: routes support tickets to a team (importable, so the optimizer rebuilds it)."""

from __future__ import annotations

from typing import Any, Literal

import dspy

from dspy_flywheel.sdk import dspy_worker_optimized

DEMO_WORKER = "ticket-router"
Team = Literal["billing", "technical", "account", "shipping"]


class RouteTicket(dspy.Signature):  # type: ignore[misc]  # dspy is untyped
    """Route the customer support ticket to the team that should handle it."""

    ticket: str = dspy.InputField()
    # The label set named, as a user's signature would: what the flywheel adds is the routing
    # rules that live in the labeled traffic, not the team names.
    label: Team = dspy.OutputField()


def label_match(example: Any, prediction: Any, trace: Any = None) -> bool:
    """Exact team name, case-insensitive."""
    expected = str(example.label).strip().lower()
    return str(getattr(prediction, "label", "")).strip().lower() == expected


@dspy_worker_optimized(
    DEMO_WORKER,
    optimization_trigger="performance",
    metric=label_match,
    threshold=0.75,
    window_size=24,
    min_examples=20,
    cooldown_seconds=3600,
    # Every training row (the job trains on 20) as a fixed demo, not the default RetrievalCascade:
    # fixed demos are the same prompt prefix on every call, which the shared LM server evaluates
    # once per slot and then keeps (cache_n), while retrieved demos are new prompt text on every
    # call, and on 2 CPU cores new prompt text is what a call costs. On two 20/45 draws of the
    # demo's tickets: 79 of 90 right either way, 2.7 s a call counting the slots' first pass over
    # the prefix, against 3.3 s with 3 retrieved demos (tests/bench/results/demo_candidates.txt)
    optimizer="StratifiedFewShot",
    max_labeled_demos=20,
)
class TicketRouter(dspy.Module):  # type: ignore[misc]  # dspy is untyped
    def __init__(self) -> None:
        super().__init__()
        self.route = dspy.Predict(RouteTicket)

    def forward(self, ticket: str) -> dspy.Prediction:
        return self.route(ticket=ticket)
