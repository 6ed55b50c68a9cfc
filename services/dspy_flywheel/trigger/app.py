"""Composition root of the trigger service: ``run(settings)`` opens everything and loops.

Startup (``store.stateful.run_stateful``): topics, migrations, leadership (advisory lock per
scope), pool, producer; then here: configs (whole compacted topic), worker states + offsets
(PostgreSQL), execution cache warm-up. Four loops under ``bus.supervise``: consume events,
follow configs, clock ticks, outbox relay. Any loop failing stops the others and re-raises.
"""

from __future__ import annotations

import asyncio
from contextlib import AsyncExitStack

from dspy_flywheel.bus import owner_guard
from dspy_flywheel.store.stateful import Built, Opened, run_stateful
from dspy_flywheel.trigger.config_topic import config_parser
from dspy_flywheel.trigger.consume import warm_execution_cache
from dspy_flywheel.trigger.correctness import Expiring
from dspy_flywheel.trigger.engine import EngineOptions, TriggerEngine
from dspy_flywheel.trigger.policy import Debounce
from dspy_flywheel.trigger.service import TriggerService, log_published
from dspy_flywheel.trigger.settings import TriggerSettings
from dspy_flywheel.trigger.store import TriggerStore


def build_engine(settings: TriggerSettings) -> TriggerEngine:
    options = EngineOptions(
        debounce=Debounce(settings.debounce_evaluations, settings.debounce_seconds),
        in_flight_timeout_s=settings.in_flight_timeout_seconds,
        reset_window_on_success=settings.reset_window_on_success,
        default_policy=settings.default_policy,
    )
    return TriggerEngine(
        options,
        Expiring(settings.exec_cache_max_entries, settings.exec_cache_ttl_seconds),
        Expiring(10_000, settings.pending_feedback_ttl_seconds),
    )


async def run(
    settings: TriggerSettings,
    *,
    stop: asyncio.Event | None = None,
    ready: asyncio.Event | None = None,
) -> None:
    """Run the trigger service until ``stop`` is set (or a loop fails, which re-raises)."""

    async def build(stack: AsyncExitStack, opened: Opened) -> Built:
        topics = settings.topics
        store = TriggerStore(opened.pool, settings.state_scope)
        engine = build_engine(settings)
        parse = config_parser(engine.refuse_config)
        follower, configs = await opened.follow_config(stack, topics.trigger_config, parse)
        for worker_id, config in configs.items():
            engine.set_config(worker_id, config)
        engine.states.update(await store.load_states())
        await warm_execution_cache(
            settings.kafka,
            topics.executions,
            opened.positions,
            engine,
            settings.exec_cache_ttl_seconds,
        )
        relay = opened.relay("trigger_outbox", log_published)
        # it dead-letters what it alone reads in full; requests and statuses are the optimizer's
        service = TriggerService(
            engine, store, owner_guard(opened.producer, topics, "trigger"), topics, relay.wake
        )
        return Built(
            service,
            relay,
            {"trigger.config": follower.follow(engine.set_config)},
            f"{len(engine.states)} workers restored, {len(engine.configs)} configs",
        )

    await run_stateful(settings, "trigger", build, stop=stop, ready=ready)
