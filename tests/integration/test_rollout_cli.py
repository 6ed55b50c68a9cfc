"""``flywheel programs ...`` against the real broker, database and a running rollout service:
settings change live, pin / unpin are answered by the service, list / show read it back."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys

import asyncpg
import pytest

from dspy_flywheel.contracts.topics import Topics
from dspy_flywheel.settings import KafkaSettings
from dspy_flywheel.store import programs
from tests.integration.helpers import until
from tests.integration.rollout_support import (
    publish_version,
    rollout_settings,
    running_rollout,
    watch,
)

pytestmark = pytest.mark.timeout(420)


async def flywheel(topics: Topics, schema: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "FLYWHEEL_TOPIC_PREFIX": topics.prefix, "FLYWHEEL_DB_SCHEMA": schema}
    return await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "dspy_flywheel.cli", "programs", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


async def test_programs_cli(
    kafka_settings: KafkaSettings,
    topics: Topics,
    db_schema: str,
    db_pool: asyncpg.Pool,
    unique: str,
) -> None:
    worker_id = f"cli-{unique}"
    async with db_pool.acquire() as conn, conn.transaction():  # the registry row, as a job's
        await programs.add_version(
            conn, programs.NewProgram(worker_id, {}, {}, "BootstrapFewShot", size_bytes=2)
        )
    async with (
        watch(kafka_settings, topics) as events,
        running_rollout(rollout_settings(topics, db_schema)),
    ):
        await publish_version(kafka_settings, topics, worker_id, 1, "v1")
        await until(lambda: _decided(events, worker_id, "canary_started"), "the canary", 30)

        changed = await flywheel(
            topics, db_schema, "config", worker_id, "--share", "0.4", "--effect-size", "0.2"
        )
        assert changed.returncode == 0, changed.stdout + changed.stderr
        assert json.loads(changed.stdout)["share"] == 0.4
        assert json.loads(changed.stdout)["effect_size"] == 0.2
        resharded = await until(
            lambda: _decided(events, worker_id, "share_changed"), "the live share change", 30
        )
        assert resharded["candidate_share"] == 0.4

        bad = await flywheel(topics, db_schema, "config", worker_id, "--share", "1.5")
        assert bad.returncode == 2
        assert "share must be in (0, 1)" in bad.stdout
        bad = await flywheel(topics, db_schema, "config", worker_id, "--effect-size", "0")
        assert bad.returncode == 2
        assert "effect_size must be in (0, 1]" in bad.stdout

        pinned = await flywheel(topics, db_schema, "pin", worker_id, "--reason", "freeze")
        assert pinned.returncode == 0, pinned.stdout + pinned.stderr
        assert pinned.stdout.startswith("pinned: cli:")
        refused = await flywheel(topics, db_schema, "promote", worker_id, "7")
        assert refused.returncode == 2
        assert "has no version 7" in refused.stdout

        shown = await flywheel(topics, db_schema, "show", worker_id, "--json")
        view = json.loads(shown.stdout)
        assert (view["stable"], view["candidate"], view["pinned"]) == (None, None, True)
        assert [d["decision"] for d in view["decisions"][:2]] == ["pinned", "share_changed"]
        listed = await flywheel(topics, db_schema, "list", worker_id)
        assert "v1" in listed.stdout
        assert "waiting (worker pinned)" in listed.stdout

        unpinned = await flywheel(topics, db_schema, "unpin", worker_id)
        assert unpinned.returncode == 0, unpinned.stdout + unpinned.stderr
        assert unpinned.stdout.splitlines()[-1].startswith("canary_started: v1 starts")


async def _decided(events: object, worker_id: str, decision: str) -> dict[str, object] | None:
    found = events.decided(worker_id, decision)  # type: ignore[attr-defined]
    return found[-1] if found else None
