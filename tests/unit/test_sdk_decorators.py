"""Decorator arguments: validation with clear errors, refs the optimizer can import, configs."""

from __future__ import annotations

import inspect
import json
import re
import typing
from dataclasses import replace
from typing import Any

import dspy
import pytest

from dspy_flywheel import DSPyAgent, dspy_worker, dspy_worker_optimized
from dspy_flywheel.contracts.codec import decode, encode
from dspy_flywheel.contracts.events import TriggerConfig
from dspy_flywheel.sdk import (
    OPTIMIZERS,
    WorkerConfigError,
    WorkerSettings,
    build_program,
    load_metric,
)
from dspy_flywheel.sdk.config_sync import merge_config


def ticket_metric(example: Any, prediction: Any, trace: Any = None) -> float:
    return float(example.label == prediction.label)


@dspy_worker_optimized(
    "ticket-router",
    optimizer="BootstrapFewShot",
    optimization_trigger="performance",
    metric=ticket_metric,
    threshold=0.75,
    window_size=40,
    max_bootstrapped_demos=3,
)
class TicketRouter(dspy.Module):
    def __init__(self) -> None:
        super().__init__()
        self.predict = dspy.Predict("text -> label")

    def forward(self, text: str) -> dspy.Prediction:
        return self.predict(text=text)


@dspy_worker("summarizer", signature="text -> summary")
def summarize(predict: dspy.Predict, text: str) -> dspy.Prediction:
    """Summarize the text in one sentence."""
    return predict(text=text)


def trigger_config(spec: Any) -> TriggerConfig:
    config: TriggerConfig = spec.optimization.trigger_config(
        spec.worker_id, spec.worker_type, spec.program_ref, spec.metric_ref, 1
    )
    return config


def trigger_record(spec: Any) -> dict[str, Any]:
    return trigger_config(spec).to_record()


def test_public_surface() -> None:
    assert callable(dspy_worker)
    assert callable(dspy_worker_optimized)
    assert DSPyAgent.__name__ == "DSPyAgent"


def test_optimized_worker_config_becomes_a_trigger_config() -> None:
    assert TicketRouter.worker_id == "ticket-router"
    record = trigger_record(TicketRouter)
    assert record["policy"] == "performance"
    assert record["threshold"] == 0.75
    assert record["window_size"] == 40
    assert record["optimizer"] == "BootstrapFewShot"
    assert json.loads(record["optimizer_params_json"]) == {"max_bootstrapped_demos": 3}
    assert record["program_ref"] == f"{__name__}:TicketRouter.build_program"
    assert record["metric_ref"] == f"{__name__}:ticket_metric"
    assert record["updated_by"] == "sdk"
    assert decode(encode(TriggerConfig.from_record(record)).value).event.to_record() == record


def test_refs_rebuild_program_and_metric_in_another_process() -> None:
    program = build_program(TicketRouter.program_ref)
    assert isinstance(program, dspy.Module)
    assert not isinstance(program, TicketRouter.__class__)
    assert next(iter(program.named_predictors()))[0] == "predict"
    assert load_metric(TicketRouter.metric_ref) is ticket_metric
    function_program = build_program(f"{__name__}:summarize.build_program")
    assert "Summarize the text" in function_program.predict.signature.instructions


def test_plain_worker_registers_no_optimization() -> None:
    assert summarize.optimization is None
    worker = summarize.create(settings=WorkerSettings(emit=False, reload=False))
    assert worker.worker_id == "summarizer"
    assert worker.optimization is None
    worker.close()


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (
            {"optimizer": "Adam"},
            re.escape(
                "accepted: ['BootstrapFewShot', 'BootstrapFewShotWithRandomSearch', 'MIPROv2', "
                "'BootstrapFinetune', 'StratifiedFewShot', 'RetrievalFewShot', 'RetrievalCascade']"
            ),
        ),
        (
            {"optimization_trigger": "hourly"},
            re.escape("accepted: ['manual', 'periodic', 'performance']"),
        ),
        (
            {"optimization_trigger": "manual", "threshold": 0.5},
            "belongs to optimization_trigger='performance'",
        ),
        ({"optimization_trigger": "periodic"}, "needs interval_seconds or cron"),
        (
            {"optimization_trigger": "performance", "threshold": 1.5},
            r"threshold must be in \[0.0, 1.0\]",
        ),
        ({"optimization_trigger": "performance", "window_size": 0}, "window_size must be >= 1"),
        ({"optimization_trigger": "periodic", "cron": "every day"}, "5-field"),
        ({"optimizer": "MIPROv2", "auto": "extreme"}, "light"),
        ({"auto": "light"}, re.escape("RetrievalCascade does not take ['auto']")),  # default
        ({"optimizer": "BootstrapFewShot", "num_trials": 5}, "does not take \\['num_trials'\\]"),
        ({"optimizer": "MIPROv2", "prompt_model": object()}, "JSON values"),
    ],
)
def test_bad_arguments_fail_at_decoration_with_what_is_accepted(
    kwargs: dict[str, Any], message: str
) -> None:
    with pytest.raises(WorkerConfigError, match=message):
        dspy_worker_optimized("w", **kwargs)


def test_periodic_and_combined_policies() -> None:
    spec = dspy_worker_optimized(
        "w", optimization_trigger="periodic", interval_seconds=3600, min_examples=10
    )(TicketRouter.__wrapped__)
    record = trigger_record(spec)
    assert record["policy"] == "periodic"
    assert record["interval_seconds"] == 3600
    assert record["min_examples"] == 10
    both = dspy_worker_optimized(
        "w", optimization_trigger="performance,periodic", cron="0 3 * * *", threshold=0.6
    )(TicketRouter.__wrapped__)
    assert trigger_record(both)["policy"] == "performance,periodic"


def test_wrapping_other_things_is_refused() -> None:
    with pytest.raises(WorkerConfigError, match=r"dspy\.Module subclass or a function"):
        dspy_worker("w")(dict)
    with pytest.raises(WorkerConfigError, match="pass signature="):
        dspy_worker("w")(lambda predict, text: None)
    with pytest.raises(WorkerConfigError, match="takes the predictor first"):
        dspy_worker("w", signature="a -> b")(lambda: None)
    with pytest.raises(WorkerConfigError, match="worker_type"):
        dspy_worker("")(TicketRouter.__wrapped__)


def test_all_documented_optimizers_are_accepted() -> None:
    for name in OPTIMIZERS:
        dspy_worker_optimized("w", optimizer=name)


def test_config_precedence_keeps_operator_thresholds() -> None:
    ours = trigger_config(TicketRouter)
    assert merge_config(None, ours) == ours
    assert merge_config(replace(ours, timestamp_ms=0), ours) is None  # nothing changed
    code_changed = merge_config(replace(ours, threshold=0.5), ours)
    assert code_changed is not None
    assert code_changed.threshold == 0.75
    operator = replace(
        ours,
        threshold=0.9,
        cooldown_seconds=60,
        updated_by="alice",
        program_ref="old.module:Router",
    )
    merged = merge_config(operator, ours)
    assert merged is not None
    assert merged.threshold == 0.9
    assert merged.cooldown_seconds == 60
    assert merged.updated_by == "alice"
    assert merged.program_ref == ours.program_ref
    assert merge_config(replace(operator, program_ref=ours.program_ref), ours) is None


def test_the_default_optimizer_is_the_catalogs_and_the_demo_names_its_own() -> None:
    from dspy_flywheel.compile.catalog import DEFAULT_OPTIMIZER
    from dspy_flywheel.demo.worker import RouteTicket
    from dspy_flywheel.demo.worker import TicketRouter as DemoRouter

    default = inspect.signature(dspy_worker_optimized).parameters["optimizer"].default
    assert default == DEFAULT_OPTIMIZER == "RetrievalCascade"
    # The demo picks fixed demos (a cached prompt prefix: cheap on 2 CPU cores; demo/worker.py).
    record = trigger_record(DemoRouter)
    assert record["optimizer"] == "StratifiedFewShot"
    assert json.loads(record["optimizer_params_json"]) == {"max_labeled_demos": 20}
    # The demo names its label set, as a user's signature would.
    annotation = RouteTicket.output_fields["label"].annotation
    assert typing.get_args(annotation) == ("billing", "technical", "account", "shipping")
