"""Composition root of the rollout service: ``run(settings)`` opens everything and loops.

Startup: topics, migrations, leadership (advisory lock per scope), canary settings (whole
compacted ``rollout-config`` topic), worker states + offsets (PostgreSQL); then five loops
under ``bus.supervise``: consume (program-updated, rollout-commands, executions, feedback),
follow the settings, clock ticks, outbox relay, and a check of ``program-rollouts`` as every
worker reads it (in a consumer group of its own). It owns the DLQs of rollout-commands,
rollout-config and program-rollouts (``contracts.topics.DLQ_OWNERS``); bad executions,
feedback and program-updated records are skipped (their owners dead-letter them).
Any loop failing stops the others.
"""

from __future__ import annotations

import asyncio
import logging
from contextlib import AsyncExitStack

from dspy_flywheel.bus import (
    UNTIL_IT_WORKS,
    DeadLetters,
    OutboxEvent,
    OutboxRelay,
    RecordGuard,
    batches,
    consume_group,
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
from dspy_flywheel.contracts.codec import Decoded
from dspy_flywheel.contracts.events import RolloutChanged
from dspy_flywheel.metrics.setup import setup_telemetry
from dspy_flywheel.rollout.config import RolloutPolicy
from dspy_flywheel.rollout.config_topic import policy_follower
from dspy_flywheel.rollout.controller import RolloutController
from dspy_flywheel.rollout.outcomes import OutcomeJoin
from dspy_flywheel.rollout.records import Changed
from dspy_flywheel.rollout.service import RolloutService
from dspy_flywheel.rollout.settings import RolloutSettings
from dspy_flywheel.rollout.store import RolloutStore
from dspy_flywheel.store import create_pool, migrate
from dspy_flywheel.store.leader import acquire_leadership, lock_key
from dspy_flywheel.store.pool import close_pool, connect

log = logging.getLogger(__name__)


async def run(
    settings: RolloutSettings,
    *,
    stop: asyncio.Event | None = None,
    ready: asyncio.Event | None = None,
) -> None:
    """Run the rollout service until ``stop`` is set (or a loop fails, which re-raises)."""
    setup_telemetry("dspy-flywheel-rollout", settings)
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
            key = lock_key("dspy_flywheel.rollout", scope)
            if not await acquire_leadership(lock_conn, key, stop, f"rollout scope {scope!r}"):
                return
        pool = await retrying(
            lambda: create_pool(settings.postgres, settings.db_schema), "opening the pool"
        )
        stack.push_async_callback(close_pool, pool)
        store = RolloutStore(pool, scope)
        producer = await retrying(lambda: start_producer(settings.kafka), "starting the producer")
        stack.push_async_callback(stop_producer, producer)

        follower = policy_follower(
            settings.kafka,
            topics.rollout_config,
            settings.fetch_max_wait_ms,
            DeadLetters(
                producer,
                "rollout",
                already_sent=await sent_sources(settings.kafka, topics.rollout_config),
            ),
        )
        stack.push_async_callback(follower.stop)
        policies = await follower.start()
        controller = RolloutController(lambda w: policies.get(w) or RolloutPolicy(worker_id=w))
        controller.states.update(await store.load_states())
        offsets = await store.load_offsets()

        relay = OutboxRelay(store, producer, poll_s=1.0, on_sent=_log_sent)
        # it reads executions, feedback and program-updated beside their owners: bad ones are
        # skipped there; it dead-letters rollout-commands (contracts.topics.DLQ_OWNERS)
        guard = RecordGuard(
            DeadLetters(producer, "rollout"),
            decoder_for(topics),
            dlq_topics=topics.dlq_owned_by("rollout"),
            retry=UNTIL_IT_WORKS,
        )
        join = OutcomeJoin(
            settings.cache_max_entries,
            settings.cache_ttl_seconds,
            settings.pending_feedback_ttl_seconds,
        )
        service = RolloutService(controller, join, store, guard, topics, relay.wake)
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

        async def on_policy(worker_id: str, policy: RolloutPolicy | None) -> None:
            if policy is None:
                policies.pop(worker_id, None)
            else:
                policies[worker_id] = policy
            log.info("rollout settings for %s: %s", worker_id, policy)
            await service.policy_changed(worker_id)

        log.info(
            "rollout service ready: scope %r, %d workers restored, %d settings",
            scope,
            len(controller.states),
            len(policies),
        )
        loops = {
            "rollout.consume": consume(),
            "rollout.config": follower.follow(on_policy),
            "rollout.tick": every(
                settings.tick_seconds, service.tick, "rollout.tick", survive_errors=False
            ),
            "rollout.relay": relay.run(),
            "rollout.changes": consume_group(
                settings.kafka,
                topics.program_rollouts,
                settings.consumer_group(settings.changes_group_id),
                guard,
                check_changed,
                stop,
            ),
        }
        await supervise(loops, stop, ready=ready)
        log.info("rollout service stopped")


async def check_changed(decoded: Decoded) -> None:
    """A ``RolloutChanged`` as every worker reads it (ValueError: it goes to the DLQ)."""
    if not isinstance(decoded.event, RolloutChanged):
        raise ValueError(f"unexpected {decoded.event_type} on the rollouts topic")
    Changed.of(decoded.event)


def _log_sent(sent: OutboxEvent) -> None:
    event = sent.event
    if isinstance(event, RolloutChanged):
        log.warning("rollout %s for %s: %s", event.decision, event.worker_id, event.reason)
