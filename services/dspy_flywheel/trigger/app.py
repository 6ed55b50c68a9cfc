"""Composition root of the trigger service: ``run(settings)`` opens everything and loops.

Startup: topics, migrations, leadership (advisory lock per scope), configs (whole compacted
topic), worker states + offsets (PostgreSQL), execution cache warm-up, then four loops under
``bus.supervise``: consume events, follow configs, clock ticks, outbox relay. Any loop failing
stops the others and re-raises.
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
    batches,
    decoder_for,
    ensure_topics,
    every,
    open_consumer,
    retrying,
    start_producer,
    stop_consumer,
    stop_producer,
    supervise,
)
from dspy_flywheel.bus.letters import sent_sources
from dspy_flywheel.metrics.setup import setup_telemetry
from dspy_flywheel.store import create_pool, migrate
from dspy_flywheel.store.leader import acquire_leadership
from dspy_flywheel.store.pool import close_pool, connect
from dspy_flywheel.trigger.config_topic import ConfigFollower
from dspy_flywheel.trigger.consume import warm_execution_cache
from dspy_flywheel.trigger.correctness import ExecutionCache, PendingFeedback
from dspy_flywheel.trigger.engine import EngineOptions, TriggerEngine
from dspy_flywheel.trigger.policy import Debounce
from dspy_flywheel.trigger.service import TriggerService, log_published
from dspy_flywheel.trigger.settings import TriggerSettings
from dspy_flywheel.trigger.store import TriggerStore, leader_lock_key

log = logging.getLogger(__name__)


def build_engine(settings: TriggerSettings) -> TriggerEngine:
    options = EngineOptions(
        debounce=Debounce(settings.debounce_evaluations, settings.debounce_seconds),
        in_flight_timeout_s=settings.in_flight_timeout_seconds,
        reset_window_on_success=settings.reset_window_on_success,
        default_policy=settings.default_policy,
    )
    return TriggerEngine(
        options,
        ExecutionCache(settings.exec_cache_max_entries, settings.exec_cache_ttl_seconds),
        PendingFeedback(ttl_s=settings.pending_feedback_ttl_seconds),
    )


async def run(
    settings: TriggerSettings,
    *,
    stop: asyncio.Event | None = None,
    ready: asyncio.Event | None = None,
) -> None:
    """Run the trigger service until ``stop`` is set (or a loop fails, which re-raises)."""
    setup_telemetry("dspy-flywheel-trigger", settings)
    stop = stop or asyncio.Event()
    topics, scope = settings.topics, settings.state_scope
    async with AsyncExitStack() as stack:
        # a broker or database still starting (or restarting) is waited for, not a failure
        await retrying(lambda: ensure_topics(settings.kafka, topics), "creating topics")
        if settings.migrate:
            await retrying(lambda: migrate(settings.postgres, settings.db_schema), "migrating")
        if settings.leader_lock:
            lock_conn = await retrying(
                lambda: connect(settings.postgres, settings.db_schema), "connecting"
            )
            stack.push_async_callback(lock_conn.close)
            what = f"trigger scope {scope!r}"
            if not await acquire_leadership(lock_conn, leader_lock_key(scope), stop, what):
                return
        pool = await retrying(
            lambda: create_pool(settings.postgres, settings.db_schema), "opening the pool"
        )
        stack.push_async_callback(close_pool, pool)
        store = TriggerStore(pool, scope)
        engine = build_engine(settings)

        producer = await retrying(lambda: start_producer(settings.kafka), "starting the producer")
        stack.push_async_callback(stop_producer, producer)
        follower = ConfigFollower(
            settings.kafka,
            topics.trigger_config,
            fetch_max_wait_ms=settings.fetch_max_wait_ms,
            on_invalid=engine.refuse_config,
            dead_letters=DeadLetters(
                producer,
                "trigger",
                already_sent=await sent_sources(settings.kafka, topics.trigger_config),
            ),
        )
        stack.push_async_callback(follower.stop)
        for worker_id, config in (await follower.start()).items():
            engine.set_config(worker_id, config)
        engine.restore(await store.load_states())
        offsets = await store.load_offsets()
        await warm_execution_cache(
            settings.kafka, topics.executions, offsets, engine, settings.exec_cache_ttl_seconds
        )

        relay = OutboxRelay(store, producer, poll_s=1.0, on_sent=log_published)
        # it dead-letters what it alone reads in full; requests and statuses are the optimizer's
        guard = RecordGuard(
            DeadLetters(producer, "trigger"),
            decoder_for(topics),
            dlq_topics=topics.dlq_owned_by("trigger"),
            retry=UNTIL_IT_WORKS,
        )
        service = TriggerService(engine, store, guard, topics, relay.wake)
        consumer = await open_consumer(
            settings.kafka,
            service.topic_names,
            positions=offsets,
            start_from=settings.start_from,
            fetch_max_wait_ms=settings.fetch_max_wait_ms,
        )
        stack.push_async_callback(stop_consumer, consumer)

        async def consume() -> None:
            async for batch in batches(
                consumer, timeout_ms=1000, max_records=settings.max_batch_records
            ):
                if batch:
                    await service.handle_batch(batch)

        log.info(
            "trigger service ready: scope %r, %d workers restored, %d configs",
            scope,
            len(engine.states),
            len(engine.configs),
        )
        loops = {
            "trigger.consume": consume(),
            "trigger.config": follower.follow(engine.set_config),
            "trigger.tick": every(
                settings.tick_seconds, service.tick, "trigger.tick", survive_errors=False
            ),
            "trigger.relay": relay.run(),
        }
        await supervise(loops, stop, ready=ready)
        log.info("trigger service stopped")
