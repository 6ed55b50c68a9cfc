"""The dashboard's rollout section and the operator's checks, on a view built by hand."""

from __future__ import annotations

from dspy_flywheel.dashboard.rollout import render_rollout


def view(**changes: object) -> dict[str, object]:
    base: dict[str, object] = {
        "assignment": "v1 at 90%, candidate v2 at 10%",
        "stable": 1,
        "candidate": 2,
        "share": 0.1,
        "phase": "canary",
        "phase_since_ms": 1_700_000_000_000,
        "live": {
            "v1": {"labels": 450, "correct": 270, "accuracy": 0.6, "interval": [0.52, 0.68]},
            "v2": {"labels": 50, "correct": 45, "accuracy": 0.9, "interval": [0.7, 1.0]},
        },
        "decisions": [
            {
                "decided_at": "2026-12-06T08:00:00+00:00",
                "decision": "canary_started",
                "decided_by": "controller",
                "reason": "v2 starts as a candidate beside v1 <b>",
            }
        ],
    }
    return {**base, **changes}


def test_shares_live_accuracy_intervals_and_decisions() -> None:
    html = render_rollout(view())
    for expected in (
        "<td>v1</td><td>90.0%</td><td>60.0%</td><td>[52.0%, 68.0%]</td><td>450</td>",
        "<td>v2</td><td>10.0%</td><td>90.0%</td><td>[70.0%, 100.0%]</td><td>50</td>",
        "canary_started",
        "&lt;b&gt;",  # reasons are escaped
    ):
        assert expected in html


def test_no_rollout_no_section() -> None:
    assert render_rollout(None) == ""
    assert render_rollout(view(assignment=None)) == ""
