"""Operators see the flywheel: one lifecycle (fake LM) observed from outside.

- A Prometheus scrape of every service and of the worker process shows its metrics, non-zero.
- The same metrics arrive over OTLP at a small receiver (one per service.name).
- The lifecycle's trace, read back from Jaeger's query API: trigger decision (linked to the
  calls that decided it) → job → snapshot → compile → evaluate → gate → publish → each worker
  instance's reload.
"""

from __future__ import annotations

import time
from typing import Any

import pytest

from tests.e2e.jaeger import RELOAD, jaeger_trace, lifecycle_trace, needs_jaeger
from tests.e2e.observed_loop import Observed
from tests.e2e.observed_worker import INSTANCES
from tests.fixtures.metrics_catalog import all_instruments
from tests.prometheus_text import prometheus_name, samples

pytestmark = pytest.mark.timeout(600)

# Scraped from each process after the loop; value > 0 required (names as OpenTelemetry's).
NON_ZERO: dict[str, tuple[str, ...]] = {
    "worker": (
        "flywheel.worker.events.emitted",
        "flywheel.worker.events.sent",
        "flywheel.worker.events.spooled",
        "flywheel.worker.events.dropped",
        "flywheel.worker.spool.size",
        "flywheel.worker.program.version",
        "flywheel.worker.reload.duration",
    ),
    "collector": (
        "messaging.client.consumed.messages",
        "flywheel.collector.events.processed",
        "flywheel.collector.rows.stored",
        "flywheel.collector.pii.removed",
        "flywheel.dlq.records",
        "flywheel.collector.batch.duration",
        "flywheel.collector.events.dropped",  # the corrupt record, dead-lettered
    ),
    "trigger": (
        "messaging.client.consumed.messages",
        "flywheel.trigger.accuracy",
        "flywheel.trigger.requests",
        "flywheel.trigger.alerts",
    ),
    "optimizer": (
        "messaging.client.consumed.messages",
        "flywheel.optimizer.jobs",
        "flywheel.optimizer.job.duration",
        "flywheel.optimizer.job.lm_calls",
        "flywheel.optimizer.job.tokens",
        "flywheel.optimizer.gate.decisions",
    ),
    "rollout": ("messaging.client.consumed.messages",),
    "manager": ("http.server.request.duration",),
}
# Present (a zero is the healthy value): lag once caught up (non-zero while behind:
# tests/integration/test_kafka_lag_metric.py); no feedback came after its execution was stored.
PRESENT: dict[str, tuple[str, ...]] = {
    "worker": ("messaging.kafka.consumer.lag",),
    "collector": ("messaging.kafka.consumer.lag", "flywheel.collector.labels.updated"),
    "trigger": ("messaging.kafka.consumer.lag",),
    "optimizer": ("messaging.kafka.consumer.lag",),
    "rollout": ("messaging.kafka.consumer.lag",),
}
SERVICE_NAMES = {
    "worker": "dspy-flywheel-worker",
    "collector": "dspy-flywheel-collector",
    "trigger": "dspy-flywheel-trigger",
    "optimizer": "dspy-flywheel-optimizer",
    "rollout": "dspy-flywheel-rollout",
    "manager": "dspy-flywheel-manager",
}


def _exposed(name: str) -> str:
    (described,) = [d for d in all_instruments() if d.name == name]
    return prometheus_name(described.name, described.unit, described.kind)


def test_the_loop_improved_and_every_instance_reloaded(observed: Observed) -> None:
    report = observed.report
    assert len(set(report["versions"])) == 1, report
    assert report["versions"][0] >= 1, report
    assert report["accuracy_after"] - report["accuracy_before"] >= 0.2, report


def test_every_service_scrape_shows_its_metrics(observed: Observed) -> None:
    observed.get("/api/v1/dashboard")  # the manager serves a request or two first
    for service, names in NON_ZERO.items():
        scraped = samples(observed.scrape(service))
        for name in names:
            values = [v for _, v in scraped.get(_exposed(name), [])]
            assert values, f"{service}: {name} ({_exposed(name)}) missing"
            assert max(values) > 0, f"{service}: {name} ({_exposed(name)}) {values}"
        for name in PRESENT.get(service, ()):
            assert _exposed(name) in scraped, f"{service}: {name} missing"


def test_every_declared_instrument_is_scraped() -> None:
    """The README table lists ``all_instruments()`` (tests/unit/test_metrics_catalog.py); each
    of them is required by a scrape above, so each name in the table is one /metrics shows."""
    checked = {n for names in (*NON_ZERO.values(), *PRESENT.values()) for n in names}
    assert {d.name for d in all_instruments()} == checked


def test_scrapes_agree_with_what_happened(observed: Observed) -> None:
    worker = samples(observed.scrape("worker"))
    stats = observed.report["stats"]
    served = {
        labels["flywheel_instance_id"]: value
        for labels, value in worker[_exposed("flywheel.worker.program.version")]
    }
    for instance in observed.report["instances"]:
        assert served[instance] == observed.report["versions"][0]
    dropped = worker[_exposed("flywheel.worker.events.dropped")]
    assert sum(v for _, v in dropped) == sum(s["dropped_after_close"] for s in stats) == 1
    spooled = worker[_exposed("flywheel.worker.events.spooled")]
    assert sum(v for _, v in spooled) == sum(s["spooled"] for s in stats) > 0
    spool = worker[_exposed("flywheel.worker.spool.size")]
    assert sum(v for _, v in spool) == sum(s["spool_bytes"] for s in stats) > 0
    assert sum(v for _, v in worker[_exposed("flywheel.worker.reload.duration")]) >= INSTANCES

    collector = samples(observed.scrape("collector"))
    dlq = collector[_exposed("flywheel.dlq.records")]
    assert [labels["error_type"] for labels, _ in dlq] == ["corrupt_payload"]
    pii = collector[_exposed("flywheel.collector.pii.removed")]
    assert "EMAIL" in {labels["flywheel_pii_kind"] for labels, _ in pii}

    trigger = samples(observed.scrape("trigger"))
    versions = {
        labels["flywheel_program_version"]: value
        for labels, value in trigger[_exposed("flywheel.trigger.accuracy")]
    }
    published = str(observed.report["versions"][0])
    assert versions["0"] + 0.2 <= versions[published], versions  # as the loop's accuracy rose

    optimizer = samples(observed.scrape("optimizer"))
    states = {
        labels["flywheel_job_state"]: value
        for labels, value in optimizer[_exposed("flywheel.optimizer.jobs")]
    }
    assert states["queued"] == states["succeeded"] == 1, states
    gate = optimizer[_exposed("flywheel.optimizer.gate.decisions")]
    assert gate == [({"flywheel_gate_decision": "publish"}, 1.0)]


def test_otlp_export_reaches_a_receiver(observed: Observed) -> None:
    deadline = time.monotonic() + 30
    missing: list[str] = []
    while time.monotonic() < deadline:
        got = observed.receiver.snapshot()
        missing = [
            f"{service}: {name}"
            for service, names in NON_ZERO.items()
            for name in names
            if not any(v > 0 for v in got.get(SERVICE_NAMES[service], {}).get(name, []))
        ]
        if not missing:
            return
        time.sleep(0.5)
    pytest.fail(f"not received over OTLP (non-zero): {missing}")


def _tags(span: dict[str, Any]) -> dict[str, Any]:
    return {t["key"]: t["value"] for t in span["tags"]}


@needs_jaeger
def test_lifecycle_trace_reads_back_from_jaeger(observed: Observed) -> None:
    found = lifecycle_trace(observed.trace_id)
    spans = {s["spanID"]: s for s in found["spans"]}
    one = {s["operationName"]: s for s in found["spans"]}
    processes = found["processes"]
    service = {s["spanID"]: processes[s["processID"]]["serviceName"] for s in spans.values()}

    def parent(span: dict[str, Any]) -> dict[str, Any]:
        (ref,) = [r for r in span["references"] if r["refType"] == "CHILD_OF"]
        return spans[ref["spanID"]]

    decision, job = one["trigger.decision"], one["optimization.job"]
    assert service[decision["spanID"]] == "dspy-flywheel-trigger"
    assert parent(job) is decision
    assert service[job["spanID"]] == "dspy-flywheel-optimizer"
    assert _tags(job)["flywheel.job_id"] == observed.job_id
    for stage in ("snapshot", "compile", "evaluate", "gate", "publish"):
        assert parent(one[f"optimization.{stage}"]) is job, stage
    assert _tags(one["optimization.gate"])["flywheel.gate.decision"] == "publish"
    reload_spans = [s for s in spans.values() if s["operationName"] == RELOAD]
    assert len(reload_spans) >= INSTANCES
    for span in reload_spans:
        assert parent(span) is one["optimization.publish"]
        assert service[span["spanID"]] == "dspy-flywheel-worker"
        assert _tags(span)["flywheel.reload.outcome"] == "serving"

    links = [r for r in decision["references"] if r["refType"] == "FOLLOWS_FROM"]
    assert len(links) >= 10, decision["references"]  # the calls in the deciding window
    for link in links:
        call = jaeger_trace(link["traceID"], within_s=10)
        assert call is not None, f"linked call trace {link['traceID']} not in Jaeger"
        (span,) = [s for s in call["spans"] if s["spanID"] == link["spanID"]]
        assert span["operationName"] == "dspy_flywheel.worker.call"
        assert _tags(span)["flywheel.worker_id"] == "loop-bfs"
