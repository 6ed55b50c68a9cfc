"""Composition root of the rollout service: ``run(settings)`` opens everything and loops.

Startup (``store.stateful.run_stateful``): topics, migrations, leadership (advisory lock per
scope), pool, producer; then here: canary settings (whole compacted ``rollout-config`` topic),
worker states + offsets (PostgreSQL). Five loops under ``bus.supervise``: consume
(program-updated, rollout-commands, executions, feedback), follow the settings, clock ticks,
outbox relay, and a check of ``program-rollouts`` as every worker reads it (in a consumer
group of its own). It owns the DLQs of rollout-commands,
rollout-config and program-rollouts (``contracts.topics.DLQ_OWNERS``); bad executions,
feedback and program-updated records are skipped (their owners dead-letter them).
Any loop failing stops the others.
"""

from __future__ import annotations

import asyncio
import logging
from contextlib import AsyncExitStack

from dspy_flywheel.bus import OutboxEvent, consume_group, owner_guard
from dspy_flywheel.contracts.codec import Decoded
from dspy_flywheel.contracts.events import RolloutChanged
from dspy_flywheel.rollout.config import RolloutPolicy, parse_policy_record
from dspy_flywheel.rollout.controller import RolloutController
from dspy_flywheel.rollout.outcomes import OutcomeJoin
from dspy_flywheel.rollout.records import assignment_of
from dspy_flywheel.rollout.service import RolloutService
from dspy_flywheel.rollout.settings import RolloutSettings
from dspy_flywheel.rollout.store import RolloutStore
from dspy_flywheel.store.stateful import Built, Opened, run_stateful

log = logging.getLogger(__name__)


async def run(
    settings: RolloutSettings,
    *,
    stop: asyncio.Event | None = None,
    ready: asyncio.Event | None = None,
) -> None:
    """Run the rollout service until ``stop`` is set (or a loop fails, which re-raises)."""

    async def build(stack: AsyncExitStack, opened: Opened) -> Built:
        topics = settings.topics
        store = RolloutStore(opened.pool, settings.state_scope)
        config = topics.rollout_config
        follower, policies = await opened.follow_config(stack, config, parse_policy_record)
        controller = RolloutController(lambda w: policies.get(w) or RolloutPolicy(worker_id=w))
        controller.states.update(await store.load_states())
        relay = opened.relay("rollout_outbox", _log_sent)
        # it reads executions, feedback and program-updated beside their owners: bad ones are
        # skipped there; it dead-letters rollout-commands (contracts.topics.DLQ_OWNERS)
        guard = owner_guard(opened.producer, topics, "rollout")
        join = OutcomeJoin(
            settings.cache_max_entries,
            settings.cache_ttl_seconds,
            settings.pending_feedback_ttl_seconds,
        )
        service = RolloutService(controller, join, store, guard, topics, relay.wake)

        async def on_policy(worker_id: str, policy: RolloutPolicy | None) -> None:
            if policy is None:
                policies.pop(worker_id, None)
            else:
                policies[worker_id] = policy
            log.info("rollout settings for %s: %s", worker_id, policy)
            await service.policy_changed(worker_id)

        changes = consume_group(
            settings.kafka,
            topics.program_rollouts,
            settings.consumer_group(settings.changes_group_id),
            guard,
            check_changed,
            opened.stop,
        )
        return Built(
            service,
            relay,
            {"rollout.config": follower.follow(on_policy), "rollout.changes": changes},
            f"{len(controller.states)} workers restored, {len(policies)} settings",
        )

    await run_stateful(settings, "rollout", build, stop=stop, ready=ready)


async def check_changed(decoded: Decoded) -> None:
    """A ``RolloutChanged`` as every worker reads it (ValueError: it goes to the DLQ)."""
    if not isinstance(decoded.event, RolloutChanged):
        raise ValueError(f"unexpected {decoded.event_type} on the rollouts topic")
    assignment_of(decoded.event)


def _log_sent(sent: OutboxEvent) -> None:
    event = sent.event
    if isinstance(event, RolloutChanged):
        log.warning("rollout %s for %s: %s", event.decision, event.worker_id, event.reason)
