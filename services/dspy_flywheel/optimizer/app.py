"""Composition root of the optimizer service: ``run(settings)`` opens everything and loops.

Startup: topics (plus this service's DLQs), migrations, pool, producer, then reap jobs orphaned
by a previous process, and run five loops: request intake (consumer group), ack intake, job
executor, outbox relay, reaper. Any loop failing stops the others and re-raises.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from contextlib import AsyncExitStack
from typing import Any

from dspy_flywheel.bus import ensure_topics, start_producer, stop_producer
from dspy_flywheel.contracts.topics import TopicSpec
from dspy_flywheel.optimizer.consumer import AckIntake, RequestIntake, consume, dlq_topics
from dspy_flywheel.optimizer.dataset import CollectorDataset, DatasetSource
from dspy_flywheel.optimizer.executor import JobExecutor
from dspy_flywheel.optimizer.outbox import OutboxRelay
from dspy_flywheel.optimizer.pipeline import JobServices
from dspy_flywheel.optimizer.reaper import reap_orphans, run_reaper
from dspy_flywheel.optimizer.settings import OptimizerSettings
from dspy_flywheel.store import apply_migrations, create_pool
from dspy_flywheel.store.pool import close_pool, connect
from dspy_flywheel.telemetry import setup_tracing

log = logging.getLogger(__name__)


async def run(
    settings: OptimizerSettings,
    *,
    stop: asyncio.Event | None = None,
    ready: asyncio.Event | None = None,
    dataset: DatasetSource | None = None,
) -> None:
    """Run the optimizer until ``stop`` is set; ``ready`` is set once requests are consumed."""
    setup_tracing("dspy-flywheel-optimizer")
    stop = stop or asyncio.Event()
    topics = settings.topics
    async with AsyncExitStack() as stack:
        await ensure_topics(
            settings.kafka, [*topics.specs(), *(TopicSpec(name, 1) for name in dlq_topics(topics))]
        )
        conn = await connect(settings.postgres)
        try:
            await apply_migrations(conn, settings.db_schema)
        finally:
            await conn.close()
        pool = await create_pool(settings.postgres, settings.db_schema)
        stack.push_async_callback(close_pool, pool)
        producer = await start_producer(settings.kafka)
        stack.push_async_callback(stop_producer, producer)

        relay = OutboxRelay(pool, producer)
        services = JobServices(
            settings, pool, dataset or CollectorDataset(pool), topics, wake_relay=relay.wake
        )
        executor = JobExecutor(services)
        reaped = await reap_orphans(
            pool, topics, instance_id=settings.instance_id, stale_after_s=settings.stale_after_s
        )
        if reaped:
            log.warning("marked %d orphaned job(s) failed: %s", len(reaped), ", ".join(reaped))
        intake_ready = asyncio.Event()
        loops: list[Coroutine[Any, Any, None]] = [
            consume(
                settings.kafka,
                topics.optimization_requests,
                settings.group_id,
                RequestIntake(pool, topics, executor.wake),
                producer,
                stop,
                name="optimizer",
                ready=intake_ready,
            ),
            consume(
                settings.kafka,
                topics.program_acks,
                settings.acks_group_id,
                AckIntake(pool),
                producer,
                stop,
                name="optimizer-acks",
            ),
            executor.run(stop),
            relay.run(stop),
            run_reaper(
                pool,
                topics,
                stop,
                instance_id=settings.instance_id,
                stale_after_s=settings.stale_after_s,
                wake_relay=relay.wake,
            ),
        ]
        tasks = [asyncio.create_task(c) for c in loops]
        waiter = asyncio.create_task(intake_ready.wait())
        await asyncio.wait([waiter, *tasks], return_when=asyncio.FIRST_COMPLETED)
        if intake_ready.is_set() and ready is not None:
            ready.set()
        log.info("optimizer %s running", settings.instance_id)
        stopper = asyncio.create_task(stop.wait())
        try:
            done, _ = await asyncio.wait([stopper, *tasks], return_when=asyncio.FIRST_COMPLETED)
            failed = [t for t in done if t is not stopper and t.exception() is not None]
        finally:
            stop.set()
            for task in tasks:
                if task is not None and not task.done():
                    task.cancel()
            results = await asyncio.gather(*tasks, return_exceptions=True)
            waiter.cancel()
            stopper.cancel()
        for result in results:
            if isinstance(result, BaseException) and not isinstance(result, asyncio.CancelledError):
                log.error("optimizer loop failed: %r", result)
        if failed:
            raise failed[0].exception()  # type: ignore[misc]  # checked non-None above
