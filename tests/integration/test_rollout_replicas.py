"""Two worker processes of one worker id on a canary: the same keys go to the same version in
both, and both switch within a second of each rollout decision. Operators drive the rollout
through the HTTP API (operator role, audited) and the CLI."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest

from dspy_flywheel.access import TokenStore
from dspy_flywheel.contracts.topics import Topics
from dspy_flywheel.manager.api import create_secured_app
from dspy_flywheel.manager.core import OptimizationManager
from dspy_flywheel.manager.settings import ManagerSettings
from dspy_flywheel.settings import KafkaSettings
from tests.integration.helpers import until
from tests.integration.rollout_support import (
    Rollouts,
    audit_rows,
    publish_version,
    rollout_settings,
    running_rollout,
    set_policy,
    watch,
)

pytestmark = pytest.mark.timeout(300)
ROOT = Path(__file__).resolve().parents[2]
VIEWER, OPERATOR = "viewer-secret-0123456", "operator-secret-0123"
TOKENS = f"ann:viewer:{VIEWER},olga:operator:{OPERATOR}"
SWITCH_S = 1.0


class Replica:
    """A worker process (``tests.fixtures.rollout_worker``) driven over stdin/stdout."""

    def __init__(self, worker_id: str, topics: Topics) -> None:
        env = {
            **os.environ,
            "FLYWHEEL_TOPIC_PREFIX": topics.prefix,
            "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
        }
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tests.fixtures.rollout_worker", worker_id],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env=env,
            text=True,
        )
        self.instance_id = ""

    def read(self) -> dict[str, Any]:
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line:
            raise AssertionError(f"replica exited with {self.proc.wait()}")
        message: dict[str, Any] = json.loads(line)
        return message

    async def ready(self) -> None:
        self.instance_id = (await asyncio.to_thread(self.read))["ready"]

    async def route(self, keys: list[str]) -> dict[str, str]:
        assert self.proc.stdin is not None
        self.proc.stdin.write("route " + ",".join(keys) + "\n")
        self.proc.stdin.flush()
        routed: dict[str, str] = (await asyncio.to_thread(self.read))["routed"]
        return routed

    def stop(self) -> None:
        if self.proc.poll() is None and self.proc.stdin is not None:
            self.proc.stdin.write("quit\n")
            self.proc.stdin.flush()
        try:
            self.proc.wait(20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def _acks(events: Rollouts, instance_id: str, status: str, version: int) -> list[dict[str, Any]]:
    return [
        d.event.to_record()
        for d in events.of("ProgramAcknowledged", instance_id=instance_id, status=status)
        if d.event.to_record()["version"] == version
    ]


async def _switched(
    events: Rollouts, replicas: list[Replica], status: str, version: int
) -> list[dict[str, Any]]:
    async def all_acked() -> list[dict[str, Any]] | None:
        found = [_acks(events, r.instance_id, status, version) for r in replicas]
        return [f[0] for f in found] if all(found) else None

    acks: list[dict[str, Any]] = await until(all_acked, f"both replicas {status} v{version}", 30)
    return acks


async def test_replicas_route_alike_and_switch_within_a_second(
    kafka_settings: KafkaSettings,
    topics: Topics,
    db_schema: str,
    db_pool: asyncpg.Pool,
    unique: str,
) -> None:
    worker_id = f"replicas-{unique}"
    # no automatic decision here: an operator promotes
    await set_policy(
        kafka_settings, topics, worker_id, share=0.3, min_samples=100_000, max_samples=200_000
    )
    manager_settings = ManagerSettings.model_validate(
        {"FLYWHEEL_TOPIC_PREFIX": topics.prefix, "FLYWHEEL_DB_SCHEMA": db_schema}
    )
    replicas = [Replica(worker_id, topics) for _ in range(2)]
    try:
        async with (
            watch(kafka_settings, topics) as events,
            running_rollout(rollout_settings(topics, db_schema)),
            OptimizationManager(manager_settings) as manager,
        ):
            await asyncio.gather(*(r.ready() for r in replicas))
            await publish_version(kafka_settings, topics, worker_id, 1, "v1")
            started = await until(
                lambda: _first(events, worker_id, "canary_started"), "the canary", 30
            )
            canary_acks = await _switched(events, replicas, "canary", 1)
            keys = [f"user-{i}" for i in range(600)]
            first, second = [await r.route(keys) for r in replicas]
            assert first == second
            share = sum(v == "v1" for v in first.values()) / len(keys)
            assert abs(share - 0.3) < 0.07
            again = await replicas[0].route(keys[:50])  # sticky: a key keeps its version
            assert again == {k: first[k] for k in keys[:50]}

            app = create_secured_app(manager, TokenStore.parse(TOKENS))
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
                path = f"/api/v1/workers/{worker_id}/programs/promote"
                viewer = {"Authorization": f"Bearer {VIEWER}"}
                denied = await client.post(path, json={}, headers=viewer)
                assert denied.status_code == 403
                operator = {"Authorization": f"Bearer {OPERATOR}"}
                answer = await client.post(path, json={"reason": "looks good"}, headers=operator)
                assert answer.status_code == 200, answer.text
                view = await client.get(f"/api/v1/workers/{worker_id}/rollout", headers=viewer)
            promoted = answer.json()["answer"]["decisions"][0]
            assert promoted["decision"] == "promoted"
            decided = await until(lambda: _first(events, worker_id, "promoted"), "promotion", 30)
            serving_acks = await _switched(events, replicas, "serving", 1)
            after = [await r.route(keys[:100]) for r in replicas]
    finally:
        for r in replicas:
            r.stop()
    assert all(set(routed.values()) == {"v1"} for routed in after)
    # from each decision event (published by the rollout service) to each replica's ack
    published = {
        d: events.published_ms[e["sequence"]]
        for d, e in (("canary_started", started), ("promoted", decided))
    }
    delays = {
        "canary_started": [a["timestamp_ms"] - published["canary_started"] for a in canary_acks],
        "promoted": [a["timestamp_ms"] - published["promoted"] for a in serving_acks],
    }
    decided_to_published = {
        "canary_started": published["canary_started"] - started["timestamp_ms"],
        "promoted": published["promoted"] - decided["timestamp_ms"],
    }
    print(
        f"\nreplicas switched after the decision event (ms, per replica): {delays}; "
        f"decision to event (ms): {decided_to_published}; canary share {share:.3f}"
    )
    assert all(0 <= d <= SWITCH_S * 1000 for ds in delays.values() for d in ds), delays
    assert view.json()["stable"] == 1
    rows = await audit_rows(db_pool, worker_id)
    promoted_rows = [r for r in rows if r["action"] == "rollout.promoted"]
    assert [r["actor"] for r in promoted_rows] == ["api:olga"]
    requests = await db_pool.fetch(
        "SELECT actor, details FROM audit_log WHERE target = $1 ORDER BY id",
        f"/api/v1/workers/{worker_id}/programs/promote",
    )
    assert [(r["actor"], r["details"]["status"]) for r in requests] == [
        ("ann", 403),
        ("olga", 200),
    ]


async def _first(events: Rollouts, worker_id: str, decision: str) -> dict[str, Any] | None:
    found = events.decided(worker_id, decision)
    return found[0] if found else None
