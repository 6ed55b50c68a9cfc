"""Composition root of the optimizer service: ``run(settings)`` opens everything and loops.

Startup: topics (plus this service's DLQs), migrations, pool, producer, then reap jobs orphaned
by a previous process, and run five loops under ``bus.supervise``: request intake (consumer
group), ack intake, job executor, outbox relay, reaper. Any loop failing stops the others and
re-raises.
"""

from __future__ import annotations

import asyncio
import logging
from contextlib import AsyncExitStack

from dspy_flywheel.bus import (
    UNTIL_IT_WORKS,
    DeadLetters,
    OutboxRelay,
    RecordGuard,
    consume_group,
    decoder_for,
    ensure_topics,
    retrying,
    start_producer,
    stop_producer,
    supervise,
)
from dspy_flywheel.metrics.setup import setup_telemetry
from dspy_flywheel.optimizer.consumer import AckIntake, RequestIntake, check_update
from dspy_flywheel.optimizer.dataset import CollectorDataset, DatasetSource
from dspy_flywheel.optimizer.executor import JobExecutor
from dspy_flywheel.optimizer.pipeline import JobServices
from dspy_flywheel.optimizer.reaper import reap_orphans, run_reaper
from dspy_flywheel.optimizer.settings import OptimizerSettings
from dspy_flywheel.store import create_pool, migrate
from dspy_flywheel.store.outbox import OptimizerOutbox
from dspy_flywheel.store.pool import close_pool

log = logging.getLogger(__name__)


async def run(
    settings: OptimizerSettings,
    *,
    stop: asyncio.Event | None = None,
    ready: asyncio.Event | None = None,
    dataset: DatasetSource | None = None,
) -> None:
    """Run the optimizer until ``stop`` is set; ``ready`` is set once requests are consumed."""
    setup_telemetry("dspy-flywheel-optimizer", settings)
    stop = stop or asyncio.Event()
    topics = settings.topics
    async with AsyncExitStack() as stack:
        # a broker or database still starting (or restarting) is waited for, not a failure
        await retrying(lambda: ensure_topics(settings.kafka, topics), "creating topics")
        await retrying(lambda: migrate(settings.postgres, settings.db_schema), "migrating")
        pool = await retrying(
            lambda: create_pool(settings.postgres, settings.db_schema), "opening the pool"
        )
        stack.push_async_callback(close_pool, pool)
        producer = await retrying(lambda: start_producer(settings.kafka), "starting the producer")
        stack.push_async_callback(stop_producer, producer)

        relay = OutboxRelay(OptimizerOutbox(pool), producer)
        services = JobServices(
            settings, pool, dataset or CollectorDataset(pool), topics, wake_relay=relay.wake
        )
        executor = JobExecutor(services)
        reaped = await reap_orphans(
            pool, topics, instance_id=settings.instance_id, stale_after_s=settings.stale_after_s
        )
        if reaped:
            log.warning("marked %d orphaned job(s) failed: %s", len(reaped), ", ".join(reaped))
        guard = RecordGuard(
            DeadLetters(producer, "optimizer"),
            decoder_for(topics),
            retry=UNTIL_IT_WORKS,
            dlq_topics=topics.dlq_owned_by("optimizer"),
        )
        intake_ready = asyncio.Event()
        loops = {
            "optimizer.requests": consume_group(
                settings.kafka,
                topics.optimization_requests,
                settings.consumer_group(settings.group_id),
                guard,
                RequestIntake(pool, topics, executor.wake),
                stop,
                ready=intake_ready,
            ),
            "optimizer.acks": consume_group(
                settings.kafka,
                topics.program_acks,
                settings.consumer_group(settings.acks_group_id),
                guard,
                AckIntake(pool),
                stop,
            ),
            "optimizer.updates": consume_group(
                settings.kafka,
                topics.program_updated,
                settings.consumer_group(settings.updates_group_id),
                guard,
                check_update,
                stop,
            ),
            "optimizer.executor": executor.run(stop),
            "optimizer.relay": relay.run(stop),
            "optimizer.reaper": run_reaper(
                pool,
                topics,
                stop,
                instance_id=settings.instance_id,
                stale_after_s=settings.stale_after_s,
                wake_relay=relay.wake,
            ),
        }
        log.info("optimizer %s starting", settings.instance_id)
        await supervise(loops, stop, ready=ready, ready_when=intake_ready)
