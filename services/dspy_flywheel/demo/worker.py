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


@dspy_worker_optimized(  # the default optimizer (compile.catalog.DEFAULT_OPTIMIZER)
    DEMO_WORKER,
    optimization_trigger="performance",
    metric=label_match,
    threshold=0.75,
    window_size=24,
    min_examples=20,
    cooldown_seconds=3600,
    # RetrievalCascade shows 3 retrieved tickets per call, not its default 6: a retrieved demo
    # is new prompt text on every call (no shared-prefix cache), and on 2 CPU cores that text
    # is what a call costs (about 7 s with 6, 4.5 with 3: tests/bench/results/demo_traffic.txt)
    k=3,
)
class TicketRouter(dspy.Module):  # type: ignore[misc]  # dspy is untyped
    def __init__(self) -> None:
        super().__init__()
        self.route = dspy.Predict(RouteTicket)

    def forward(self, ticket: str) -> dspy.Prediction:
        return self.route(ticket=ticket)
