"""Building ``OptimizationRequested`` events (``new_request``: the trigger's, the CLI's and the
manager's all come from it), their ``Alert``s, and the manual path (CLI).

Automatic requests go out through the service's outbox (``app``); ``request_optimization``
publishes a manual request directly, at once, whatever the worker's policy or cooldown.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from opentelemetry import trace
from opentelemetry.trace import Link

from dspy_flywheel.bus.publish import producing, publish
from dspy_flywheel.compile.catalog import DEFAULT_OPTIMIZER
from dspy_flywheel.contracts.events import Alert, OptimizationRequested, now_ms
from dspy_flywheel.contracts.ids import new_id
from dspy_flywheel.contracts.topics import Topics
from dspy_flywheel.settings import KafkaSettings
from dspy_flywheel.telemetry import context_from_traceparent, current_traceparent, tracer
from dspy_flywheel.trigger.config import InvalidConfig, TriggerPolicyConfig
from dspy_flywheel.trigger.config_topic import read_configs
from dspy_flywheel.trigger.engine import BlockedBreach, PlannedRequest

Announced = OptimizationRequested | Alert


@dataclass(frozen=True)
class RequestEnvelope:
    """An event ready to publish, plus the ids that travel in its headers.

    An ``OptimizationRequested``, or an ``Alert``: with a performance request (``job_id`` is
    then the job it announces) or for a blocked breach (the worker's last job, "" if none)."""

    event_id: str
    job_id: str
    worker_id: str
    event: Announced
    traceparent: str | None


def new_request(
    *,
    worker_id: str,
    reason: str,
    optimizer: str,
    params: Mapping[str, Any],
    evidence: Mapping[str, Any],
    requested_by: str,
    program_ref: str | None,
    metric_ref: str | None,
    job_id: str | None = None,
    timestamp_ms: int | None = None,
) -> OptimizationRequested:
    """An ``OptimizationRequested`` (a new job id and the current time unless given)."""
    return OptimizationRequested(
        job_id=job_id or new_id(),
        worker_id=worker_id,
        reason=reason,
        optimizer=optimizer,
        optimizer_params_json=json.dumps(dict(params), sort_keys=True),
        evidence_json=json.dumps(dict(evidence), sort_keys=True),
        requested_by=requested_by,
        program_ref=program_ref,
        metric_ref=metric_ref,
        timestamp_ms=now_ms() if timestamp_ms is None else timestamp_ms,
    )


def configured_request(
    *,
    worker_id: str,
    reason: str,
    config: TriggerPolicyConfig | None,
    evidence: Mapping[str, Any],
    requested_by: str = "trigger",
    optimizer: str | None = None,
    params: Mapping[str, Any] | None = None,
    job_id: str | None = None,
    timestamp_ms: int | None = None,
) -> OptimizationRequested:
    """A request with the worker's trigger config as defaults: ``params`` are merged into the
    config's optimizer params, ``optimizer`` replaces the config's."""
    merged_params = dict(config.optimizer_params) if config else {}
    merged_params.update(params or {})
    return new_request(
        worker_id=worker_id,
        reason=reason,
        optimizer=optimizer or (config.optimizer if config else DEFAULT_OPTIMIZER),
        params=merged_params,
        evidence=evidence,
        requested_by=requested_by,
        program_ref=config.program_ref if config else None,
        metric_ref=config.metric_ref if config else None,
        job_id=job_id,
        timestamp_ms=timestamp_ms,
    )


def envelope_for(planned: PlannedRequest) -> RequestEnvelope:
    """Open the ``trigger.decision`` span (child of the crossing event's trace) and build it."""
    parent = context_from_traceparent(planned.parent_traceparent)
    named = ("worker_id", "job_id", "reason")
    attributes: dict[str, str | float] = {f"flywheel.{k}": getattr(planned, k) for k in named}
    accuracy = planned.evidence.get("accuracy")
    if isinstance(accuracy, float):
        attributes["flywheel.accuracy"] = accuracy
    links = [
        Link(trace.get_current_span(context_from_traceparent(tp)).get_span_context())
        for tp in planned.window_traceparents
    ]
    with tracer.start_as_current_span(
        "trigger.decision", context=parent, attributes=attributes, links=links
    ):
        traceparent = current_traceparent()
    request = configured_request(
        job_id=planned.job_id,
        worker_id=planned.worker_id,
        reason=planned.reason,
        config=planned.config,
        evidence=planned.evidence,
        timestamp_ms=planned.timestamp_ms,
    )
    return RequestEnvelope(new_id(), planned.job_id, planned.worker_id, request, traceparent)


def _breach(worker_id: str, evidence: dict[str, Any]) -> str:
    """``w: rolling accuracy 40.0% is below the threshold 80.0% over the last 20 labeled calls``"""
    accuracy, threshold = evidence.get("accuracy"), evidence.get("threshold")
    measured = "rolling accuracy is below the threshold"
    if isinstance(accuracy, float) and isinstance(threshold, float):
        measured = f"rolling accuracy {accuracy:.1%} is below the threshold {threshold:.1%}"
    return f"{worker_id}: {measured} over the last {evidence.get('window_count')} labeled calls"


def _alert(
    worker_id: str,
    message: str,
    details: dict[str, Any],
    job_id: str,
    traceparent: str | None,
    timestamp_ms: int,
    *,
    kind: str = "accuracy_below_threshold",
    severity: str = "warning",
    alert_id: str | None = None,
) -> RequestEnvelope:
    alert = Alert(
        alert_id=alert_id or new_id(),
        worker_id=worker_id or None,
        severity=severity,
        kind=kind,
        message=message,
        details_json=json.dumps(details, sort_keys=True),
        timestamp_ms=timestamp_ms,
    )
    return RequestEnvelope(alert.alert_id, job_id, worker_id, alert, traceparent)


def degradation_alert(planned: PlannedRequest, request: RequestEnvelope) -> RequestEnvelope:
    """The ``Alert`` for a performance request: accuracy fell below the worker's threshold.

    It shares the request's trace, and its details carry the request's evidence and job id."""
    evidence = planned.evidence
    message = f"{_breach(planned.worker_id, evidence)}; optimization job {planned.job_id} requested"
    details = {"job_id": planned.job_id, **evidence}
    return _alert(
        planned.worker_id,
        message,
        details,
        planned.job_id,
        request.traceparent,
        planned.timestamp_ms,
    )


def blocked_alert(breach: BlockedBreach) -> RequestEnvelope:
    """The ``Alert`` for a breach that cannot become a request yet (cooldown, too few new
    examples), e.g. when accuracy is still low after the last job failed or was rejected."""
    evidence = breach.evidence
    last = f"; last job {breach.last_job_id}" if breach.last_job_id else ""
    status = breach.last_status or ""
    if breach.last_job_id and status.startswith(f"{breach.last_job_id}:"):
        last += f" ended {status.split(':', 1)[1]}"
    message = (
        f"{_breach(breach.worker_id, evidence)}; no optimization requested: {breach.why}{last}"
    )
    details = {
        "blocked": breach.why,
        "last_job_id": breach.last_job_id,
        "last_status": breach.last_status,
        **evidence,
    }
    return _alert(
        breach.worker_id,
        message,
        details,
        breach.last_job_id or "",
        breach.parent_traceparent,
        breach.timestamp_ms,
    )


def invalid_config_alert(invalid: InvalidConfig, scope: str) -> RequestEnvelope:
    """The ``Alert`` for a trigger config record that was skipped when read. Its id derives
    from the record's place, so a restart that reads the record again does not alert twice."""
    who = invalid.worker_id or "unknown worker"
    message = (
        f"{who}: trigger config at {invalid.source} refused ({invalid.error}); "
        "the previous config stays in effect"
    )
    return _alert(
        invalid.worker_id or "",
        message,
        {"source": invalid.source, "error": invalid.error},
        "",
        None,
        now_ms(),
        kind="invalid_trigger_config",
        severity="error",
        alert_id=str(uuid.uuid5(uuid.NAMESPACE_URL, f"flywheel-config:{scope}:{invalid.source}")),
    )


async def request_optimization(
    kafka: KafkaSettings,
    topics: Topics,
    worker_id: str,
    *,
    optimizer: str | None = None,
    params: Mapping[str, Any] | None = None,
    requested_by: str = "api",
) -> str:
    """Publish a manual ``OptimizationRequested`` now; return its job id.

    Optimizer, params, program_ref and metric_ref default to the worker's trigger config
    (read from the config topic); ``optimizer``/``params`` override.
    """
    config = (await read_configs(kafka, topics.trigger_config)).get(worker_id)
    job_id = new_id()
    with tracer.start_as_current_span(
        "trigger.manual", attributes={"flywheel.worker_id": worker_id, "flywheel.job_id": job_id}
    ):
        request = configured_request(
            job_id=job_id,
            worker_id=worker_id,
            reason="manual",
            config=config,
            evidence={"requested_via": requested_by},
            requested_by=requested_by,
            optimizer=optimizer,
            params=params,
        )
        async with producing(kafka) as producer:
            await publish(producer, topics.optimization_requests, worker_id, request)
    return job_id
