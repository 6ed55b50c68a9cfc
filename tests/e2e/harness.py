"""Shared pieces of the end-to-end loop tests: services, lifecycle watcher, polling, traffic."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import time
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from dspy_flywheel.contracts.topics import Topics
from dspy_flywheel.demo.services import SERVICES, ServiceGroup
from dspy_flywheel.demo.watch import Lifecycle, follow
from dspy_flywheel.settings import KafkaSettings

ROOT = Path(__file__).resolve().parents[2]
FINAL = ("succeeded", "rejected", "failed", "cancelled")


def service_env(
    topics: Topics,
    schema: str,
    kafka: KafkaSettings,
    connection: Mapping[str, str] | None = None,
    **extra: str,
) -> dict[str, str]:
    """The services' environment; ``connection`` (default: this process's bootstrap servers
    and DATABASE_URL) holds the KAFKA_* / DATABASE_* settings, e.g. ``ops/stack env --secure``."""
    if connection is None:
        connection = {
            "KAFKA_BOOTSTRAP_SERVERS": kafka.bootstrap_servers,
            "DATABASE_URL": os.environ["DATABASE_URL"],
        }
    return {
        **connection,
        "FLYWHEEL_TOPIC_PREFIX": topics.prefix,
        "FLYWHEEL_DB_SCHEMA": schema,
        "FLYWHEEL_ENCRYPTION_KEYS": "e2e:" + base64.b64encode(os.urandom(32)).decode(),
        "FLYWHEEL_ENCRYPTION_ACTIVE_KEY": "e2e",
        "FLYWHEEL_OPTIMIZER_MIN_EXAMPLES": "16",
        "FLYWHEEL_OPTIMIZER_GROUP_ID": f"opt-{topics.prefix}",
        "FLYWHEEL_OPTIMIZER_ACKS_GROUP_ID": f"acks-{topics.prefix}",
        "FLYWHEEL_COLLECTOR_GROUP_ID": f"col-{topics.prefix}",
        "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
        **extra,
    }


@dataclass
class Loop:
    services: ServiceGroup
    lifecycle: Lifecycle
    log_dir: Path

    def check_alive(self) -> None:
        if dead := self.services.dead():
            logs = {n: (self.log_dir / f"{n}.log").read_text()[-3000:] for n in dead}
            pytest.fail(f"services exited: {dead}\n{json.dumps(logs, indent=1)}")

    async def until(self, predicate: Callable[[], bool], within_s: float, what: str) -> None:
        end = time.monotonic() + within_s
        while not predicate():
            self.check_alive()
            if time.monotonic() > end:
                pytest.fail(
                    f"timed out after {within_s:.0f}s waiting for {what}; "
                    f"lifecycle={self.lifecycle}"
                )
            await asyncio.sleep(0.2)


@asynccontextmanager
async def running_loop(
    env: dict[str, str],
    log_dir: Path,
    kafka: KafkaSettings,
    topics: Topics,
    worker_id: str,
    names: tuple[str, ...] = SERVICES,
) -> AsyncIterator[Loop]:
    """The services (default: collector, trigger, optimizer) as child processes plus a
    lifecycle watcher."""
    services = ServiceGroup(env, log_dir)
    services.start(names)
    lifecycle = Lifecycle(worker_id)
    stop = asyncio.Event()
    watcher = asyncio.create_task(follow(kafka, topics, lifecycle, stop))
    try:
        yield Loop(services, lifecycle, log_dir)
    finally:
        stop.set()
        try:
            await _stopped(watcher)
        finally:
            services.stop()  # never leave the services running


async def _stopped(watcher: asyncio.Task[None]) -> None:
    """Wait for the watcher to end. On a loaded machine aiokafka's consumer.stop() can end in a
    CancelledError from its own fetch task (a timed-out fetch being torn down); that is not our
    task being cancelled, and the watcher's work is done by then."""
    try:
        await watcher
    except asyncio.CancelledError:
        current = asyncio.current_task()
        if current is not None and current.cancelling():
            raise


def serve_labeled(worker: Any, items: Iterable[tuple[dict[str, Any], str]], field: str) -> float:
    """Call the worker on each input, send the label as feedback; return the accuracy."""
    outcomes = []
    for inputs, label in items:
        pred = worker(**inputs)
        worker.feedback(pred.execution_id, label=label)
        outcomes.append(str(getattr(pred, field, "")).strip().lower() == label.strip().lower())
    return sum(outcomes) / len(outcomes)
