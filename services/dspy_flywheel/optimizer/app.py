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

from dspy_flywheel.bus import OutboxRelay, consume_group, owner_guard, supervise
from dspy_flywheel.metrics.setup import setup_telemetry
from dspy_flywheel.optimizer.consumer import AckIntake, RequestIntake, check_update
from dspy_flywheel.optimizer.dataset import CollectorDataset, DatasetSource
from dspy_flywheel.optimizer.executor import JobExecutor
from dspy_flywheel.optimizer.pipeline import JobServices
from dspy_flywheel.optimizer.reaper import reap_orphans, run_reaper
from dspy_flywheel.optimizer.settings import OptimizerSettings
from dspy_flywheel.store.outbox import OutboxTable
from dspy_flywheel.store.startup import open_service

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
        pool, producer = await open_service(stack, settings)

        relay = OutboxRelay(OutboxTable(pool), producer)
        services = JobServices(
            settings, pool, dataset or CollectorDataset(pool), topics, wake_relay=relay.wake
        )
        executor = JobExecutor(services)
        reaped = await reap_orphans(pool, topics, settings)
        if reaped:
            log.warning("marked %d orphaned job(s) failed: %s", len(reaped), ", ".join(reaped))
        guard = owner_guard(producer, topics, "optimizer")
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
            "optimizer.reaper": run_reaper(pool, topics, settings, stop, relay.wake),
        }
        log.info("optimizer %s starting", settings.instance_id)
        await supervise(loops, stop, ready=ready, ready_when=intake_ready)
