"""The demo worker: routes support tickets to a team (importable, so the optimizer rebuilds it)."""

from __future__ import annotations

from typing import Any

import dspy

from dspy_flywheel.sdk import dspy_worker_optimized

TEAMS = ("billing", "technical", "account", "shipping")
DEMO_WORKER = "ticket-router"


class RouteTicket(dspy.Signature):  # type: ignore[misc]  # dspy is untyped
    """Route the customer support ticket to the team that should handle it."""

    ticket: str = dspy.InputField()
    # A free-text label, as teams often start: the model has to learn the team names from
    # labeled traffic (demos), which is what the flywheel gives it.
    label: str = dspy.OutputField()


def label_match(example: Any, prediction: Any, trace: Any = None) -> bool:
    """Exact team name, case-insensitive."""
    expected = str(example.label).strip().lower()
    return str(getattr(prediction, "label", "")).strip().lower() == expected


@dspy_worker_optimized(
    DEMO_WORKER,
    optimizer="BootstrapFewShot",
    optimization_trigger="performance",
    metric=label_match,
    threshold=0.75,
    window_size=24,
    min_examples=20,
    cooldown_seconds=3600,
    max_bootstrapped_demos=4,
    max_labeled_demos=8,
)
class TicketRouter(dspy.Module):  # type: ignore[misc]  # dspy is untyped
    def __init__(self) -> None:
        super().__init__()
        self.route = dspy.Predict(RouteTicket)

    def forward(self, ticket: str) -> dspy.Prediction:
        return self.route(ticket=ticket)
