"""Live canaries on the real broker and database, with the fake LM playing good and bad
versions (``tests/fixtures/rollout_lm.py``): promote, roll back, guard (pinned workers:
``test_rollout_pinned.py``).

The rollout service runs in-process (``rollout.app.run``), the worker is a real SDK worker;
versions are published on ``program-updated`` as the optimizer does (or, for the bad canary, by
the optimizer itself after its holdout gate passed them).
"""

from __future__ import annotations

import json
from pathlib import Path

import asyncpg
import pytest
from aiokafka import AIOKafkaProducer
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from dspy_flywheel.contracts.topics import Topics
from dspy_flywheel.settings import KafkaSettings
from dspy_flywheel.store import jobs
from dspy_flywheel.telemetry import trace_id_of
from tests.integration.helpers import span_exporter, until
from tests.integration.optimizer_support import (
    dataset,
    request,
    running_optimizer,
    send_request,
)
from tests.integration.rollout_support import (
    ENDS,
    Traffic,
    audit_rows,
    executions,
    gate_passing_optimizer,
    make_worker,
    publish_version,
    rollout_settings,
    running_rollout,
    serve_until,
    set_policy,
    watch,
)

pytestmark = pytest.mark.timeout(300)


@pytest.fixture(scope="module")
def spans() -> InMemorySpanExporter:
    return span_exporter()


async def test_good_canary_is_promoted_at_its_share(
    kafka_settings: KafkaSettings,
    topics: Topics,
    db_schema: str,
    unique: str,
    tmp_path: Path,
    accuracy: dict[str, object],
) -> None:
    accuracy.update({"code": 0.6, "good": 0.9})
    worker_id = f"good-{unique}"
    async with (
        watch(kafka_settings, topics) as events,
        running_rollout(rollout_settings(topics, db_schema)),
    ):
        worker = make_worker(topics, tmp_path, worker_id)
        try:
            traffic = Traffic(worker, label_every=8)  # one call in 8 gets its label
            await traffic.serve(100)
            await publish_version(kafka_settings, topics, worker_id, 1, "good")

            async def canary_on() -> bool:
                return worker.candidate is not None

            await until(canary_on, "the canary assignment at the worker", 30)
            canary_from = traffic.calls
            decided = await serve_until(traffic, events, worker_id, *ENDS, most_calls=20_000)
        finally:
            worker.close(timeout=10)
    assert decided is not None, "no decision within 20,000 calls"
    assert decided["decision"] == "promoted", decided["reason"]
    assert worker.version == 1
    evidence = json.loads(decided["evidence_json"])
    labels = evidence["current"]["labels"] + evidence["candidate"]["labels"]
    calls = await executions(events, worker_id, canary_from + 2000)
    window = calls[canary_from:]
    assert len(window) == 2000
    assert window[-1]["timestamp_ms"] < decided["timestamp_ms"]  # all 2,000 during the canary
    share = sum(e["program_version"] == "1" for e in window) / len(window)
    print(
        f"\ngood canary: promoted after {labels} labeled calls "
        f"({traffic.calls - canary_from} calls); candidate share over 2,000 canary calls "
        f"{share:.3f} (configured 0.100); {decided['reason']}"
    )
    assert abs(share - 0.10) <= 0.03
    alerts = events.alerts(worker_id)
    assert [a["kind"] for a in alerts] == ["rollout_canary_started", "rollout_promoted"]


async def test_bad_canary_that_passed_the_gate_is_rolled_back(
    kafka_settings: KafkaSettings,
    producer: AIOKafkaProducer,
    topics: Topics,
    db_schema: str,
    db_pool: asyncpg.Pool,
    group_id: str,
    unique: str,
    tmp_path: Path,
    accuracy: dict[str, object],
    spans: InMemorySpanExporter,
) -> None:
    """The optimizer's gate passes the candidate (holdout: 25 won, 0 lost), live traffic finds
    it worse: the compiled program is right on 10 % of live tickets against 60 %."""
    accuracy.update({"code": 0.6, "optimized": 0.1})
    worker_id = f"bad-{unique}"
    opt = await gate_passing_optimizer(db_pool, topics, db_schema, group_id, worker_id)
    await set_policy(kafka_settings, topics, worker_id, share=0.2, min_samples=30)
    job = request(worker_id)
    async with (
        watch(kafka_settings, topics) as events,
        running_rollout(rollout_settings(topics, db_schema)),
        running_optimizer(opt, dataset(db_pool)),
    ):
        worker = make_worker(topics, tmp_path, worker_id)
        try:
            traffic = Traffic(worker, label_every=2)
            await traffic.serve(100)
            await send_request(producer, topics, job)

            async def started() -> bool:
                return bool(events.decided(worker_id, "canary_started"))

            await until(started, "the canary of the published candidate", 90)
            decided = await serve_until(traffic, events, worker_id, *ENDS, most_calls=10_000)
            await traffic.serve(200)  # after the rollback: the code's program again
            calls = await executions(events, worker_id, traffic.calls)
        finally:
            worker.close(timeout=10)
    row = await jobs.get(db_pool, job.job_id)
    assert row is not None
    assert row.status == "succeeded", row.message
    assert (row.details["gate"]["b"], row.details["gate"]["c"]) == (25, 0)
    assert decided is not None
    assert decided["decision"] == "rolled_back", decided["reason"]
    assert (decided["stable_version"], decided["candidate_version"]) == (None, None)
    assert worker.version is None
    assert worker.candidate is None
    # the event above, and an alert, an audit row and a span in the job's lifecycle trace
    kinds = [a["kind"] for a in events.alerts(worker_id)]
    assert "rollout_rolled_back" in kinds
    actions = [r["action"] for r in await audit_rows(db_pool, worker_id)]
    assert actions == ["rollout.canary_started", "rollout.rolled_back"]
    [rolled] = [
        s
        for s in spans.get_finished_spans()
        if s.name == "rollout.rolled_back"
        and s.attributes
        and s.attributes.get("flywheel.worker_id") == worker_id
    ]
    [publish] = [
        s
        for s in spans.get_finished_spans()
        if s.name == "optimization.publish"
        and s.attributes
        and s.attributes.get("flywheel.program.version") == 1
        and s.context.trace_id == rolled.context.trace_id
    ]
    assert publish.context is not None
    rolled_event = events.of("RolloutChanged", worker_id=worker_id, decision="rolled_back")[0]
    assert trace_id_of(rolled_event.traceparent) == format(rolled.context.trace_id, "032x")
    served_bad = sum(e["program_version"] == "1" for e in calls)
    evidence = json.loads(decided["evidence_json"])
    print(
        f"\nbad canary: rolled back after {evidence['current']['labels']} + "
        f"{evidence['candidate']['labels']} labeled calls; the bad version served "
        f"{served_bad} of {len(calls)} calls ({served_bad / len(calls):.1%}); {decided['reason']}"
    )
    assert 0 < served_bad < 0.3 * len(calls)


async def test_drift_after_promotion_rolls_back_once(
    kafka_settings: KafkaSettings,
    topics: Topics,
    db_schema: str,
    db_pool: asyncpg.Pool,
    unique: str,
    tmp_path: Path,
    accuracy: dict[str, object],
) -> None:
    accuracy.update({"code": 0.6, "drifty": 0.9})
    worker_id = f"drift-{unique}"
    await set_policy(kafka_settings, topics, worker_id, share=0.5, min_samples=30)
    async with (
        watch(kafka_settings, topics) as events,
        running_rollout(rollout_settings(topics, db_schema)),
    ):
        worker = make_worker(topics, tmp_path, worker_id)
        try:
            traffic = Traffic(worker)
            await traffic.serve(50)
            await publish_version(kafka_settings, topics, worker_id, 1, "drifty")
            promoted = await serve_until(traffic, events, worker_id, *ENDS, most_calls=3000)
            assert promoted is not None
            assert promoted["decision"] == "promoted", promoted["reason"]
            accuracy["drifty"] = 0.2  # live traffic drifts: v1 is now worse than v0 was
            guard = await serve_until(
                traffic, events, worker_id, "guard_rolled_back", most_calls=traffic.calls + 4000
            )
            assert guard is not None, "no guard rollback after the drop"
            after_rollback = traffic.calls
            await traffic.serve(1500)  # and nothing else happens by itself
            calls = await executions(events, worker_id, traffic.calls)
        finally:
            worker.close(timeout=10)
    later = [d for d in events.decisions(worker_id) if d["sequence"] > promoted["sequence"]]
    assert [d["decision"] for d in later] == ["guard_rolled_back"]
    assert (guard["stable_version"], guard["candidate_version"]) == (None, None)
    assert worker.version is None
    assert all(e["program_version"] is None for e in calls[after_rollback + 20 :])
    print(f"\ndrift: {guard['reason']}")
    actions = [r["action"] for r in await audit_rows(db_pool, worker_id)]
    assert actions.count("rollout.guard_rolled_back") == 1
