"""Composition root of the collector: ``run(settings)`` opens everything, then an engine runs.

Startup: encryption keys (fail fast when missing), topics, migrations, pool, DLQ producer,
policies, the periodic jobs (join-state expiry, retention: ``collector.maintenance``); then the
faust engine (default) or the aiokafka engine until ``stop`` is set.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence
from contextlib import AsyncExitStack

from dspy_flywheel.bus import DeadLetter, DeadLetters, every
from dspy_flywheel.collector.core import Collector
from dspy_flywheel.collector.events import Rejected
from dspy_flywheel.collector.maintenance import apply_retention, expire_pending
from dspy_flywheel.collector.policy import PolicyBook
from dspy_flywheel.collector.settings import CollectorSettings
from dspy_flywheel.metrics.setup import setup_telemetry
from dspy_flywheel.privacy import Anonymizer
from dspy_flywheel.security.crypto import Cipher
from dspy_flywheel.store.startup import open_service

log = logging.getLogger(__name__)


async def run(
    settings: CollectorSettings,
    *,
    stop: asyncio.Event | None = None,
    ready: asyncio.Event | None = None,
) -> None:
    """Run the collector until ``stop`` is set."""
    setup_telemetry("dspy-flywheel-collector", settings)
    stop = stop or asyncio.Event()
    cipher = Cipher.from_settings(settings.encryption)
    async with AsyncExitStack() as stack:
        pool, producer = await open_service(
            stack, settings, migrations=settings.migrate, linger_ms=20
        )
        # Dead letters hold events with personal data: sealed with the platform's key, and the
        # error text anonymized before it reaches a header or a log line.
        redactor = Anonymizer(cipher.pii_key)
        dead_letters = DeadLetters(
            producer,
            "collector",
            cipher=cipher,
            redact=lambda text: redactor.anonymize(text, "dead-letters").text,
        )

        async def publish_rejects(rejects: Sequence[Rejected]) -> None:
            await dead_letters.publish([DeadLetter(r.message, r.reason, r.detail) for r in rejects])

        policies = PolicyBook(settings.default_policy(), settings.policy_refresh_s)
        await policies.refresh(pool, force=True)

        collector = Collector(
            pool,
            cipher,
            policies,
            publish_rejects,
            settings.topics,
            hold_s=settings.hold_s,
            max_held=settings.max_held,
        )

        async def retention() -> None:
            await apply_retention(pool, policies, settings.processed_ttl_h)

        for seconds, job, name in (
            (settings.expiry_interval_s, lambda: expire_pending(pool), "join-state expiry"),
            (settings.retention_interval_s, retention, "retention job"),
        ):
            stack.push_async_callback(_cancel, asyncio.create_task(every(seconds, job, name)))
        if settings.engine == "faust":
            from dspy_flywheel.collector.faust_app import run_faust

            await run_faust(settings, collector, stop, ready)
        else:
            from dspy_flywheel.collector.kafka_loop import run_kafka

            await run_kafka(settings, collector, stop, ready)
    log.info("collector stopped")


async def _cancel(task: asyncio.Task[None]) -> None:
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
