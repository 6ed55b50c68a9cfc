"""The rollout service's processing core: records in, decisions out, one transaction each.

Each consumed batch (and each clock tick, and each live settings change) ends in ONE
PostgreSQL transaction with the changed worker states, the next offsets and every decision:
its row, its audit row and its events (``RolloutChanged`` on ``program-rollouts``, ``Alert`` on
``alerts``) in the outbox. A crash resumes from a consistent point; nothing is decided twice.

Each decision is also a span (``rollout.<decision>``), a child of the optimization lifecycle
that published the version (the ``ProgramUpdated``'s traceparent), and its events carry that
span's traceparent: promote and rollback sit in the same trace as the job that made the version.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from dspy_flywheel.bus import OutboxEvent, RecordGuard, retrying
from dspy_flywheel.contracts.codec import Decoded
from dspy_flywheel.contracts.events import (
    ExecutionRecorded,
    FeedbackRecorded,
    ProgramUpdated,
    RolloutCommand,
    now_ms,
)
from dspy_flywheel.contracts.ids import new_id
from dspy_flywheel.contracts.topics import Topics
from dspy_flywheel.rollout.controller import CommandRefused, Decision, RolloutController
from dspy_flywheel.rollout.outcomes import Outcome, OutcomeJoin
from dspy_flywheel.rollout.records import alert_event, changed_event, command_of
from dspy_flywheel.rollout.store import Published, Refusal, RolloutStore
from dspy_flywheel.store.offsets import Offsets
from dspy_flywheel.store.stateful import BatchService
from dspy_flywheel.telemetry import context_from_traceparent, current_traceparent, tracer

log = logging.getLogger(__name__)


class RolloutService(BatchService[Decision]):
    # versions before the outcomes that name them; executions before their labels
    ORDER = ("program_updated", "rollout_commands", "executions", "feedback")

    def __init__(
        self,
        controller: RolloutController,
        join: OutcomeJoin,
        store: RolloutStore,
        guard: RecordGuard[Decoded],
        topics: Topics,
        wake_relay: Callable[[], None],
    ) -> None:
        super().__init__(guard, topics, wake_relay)
        self.controller = controller
        self.join = join
        self.store = store
        self._refusals: list[Refusal] = []

    async def tick(self) -> None:
        async with self._lock:
            await self._commit(self.controller.tick(now_ms()), {})

    async def policy_changed(self, worker_id: str) -> None:
        async with self._lock:
            await self._commit(self.controller.on_policy(worker_id, now_ms()), {})

    async def _handle(self, decoded: Decoded) -> list[Decision]:
        event = decoded.event
        if isinstance(event, ExecutionRecorded):
            if event.worker_id not in self.controller.states:
                return []  # never published a version: nothing to compare
            return self._observed(self.join.on_execution(event))
        if isinstance(event, FeedbackRecorded):
            return self._observed(self.join.on_feedback(event))
        if isinstance(event, ProgramUpdated):
            return self.controller.on_published(
                event.worker_id,
                event.version,
                event.rollout or "serve",
                now_ms(),
                job_id=event.job_id,
                traceparent=decoded.traceparent,
            )
        if isinstance(event, RolloutCommand):
            command = command_of(event)
            try:
                return self.controller.on_command(command, now_ms())
            except CommandRefused as exc:
                log.warning("refused %s of %s: %s", command.command, command.worker_id, exc)
                details = {**event.to_record(), "refused": str(exc)}
                self._refusals.append(Refusal(command.requested_by, command.worker_id, details))
                return []
        log.debug("ignoring %s", event.event_type)
        return []

    def _observed(self, outcome: Outcome | None) -> list[Decision]:
        if outcome is None:
            return []
        return self.controller.on_outcome(
            outcome.worker_id, outcome.version, outcome.correct, now_ms()
        )

    async def _commit(self, decisions: list[Decision], offsets: Offsets) -> None:
        published = [self._publish(d) for d in decisions]
        dirty = self.controller.dirty
        states = {w: (self.controller.states[w].to_json(),) for w in dirty}
        refusals, self._refusals = self._refusals, []
        if states or offsets or published or refusals:
            await retrying(
                lambda: self.store.save(states, offsets, published, refusals),
                "saving rollout state",
            )
        dirty.clear()
        if published:
            self.wake_relay()

    def _publish(self, decision: Decision) -> Published:
        """The decision's span (in the lifecycle trace) and its two events."""
        attributes: dict[str, str | int] = {
            "flywheel.worker_id": decision.worker_id,
            "flywheel.rollout.decision": decision.decision,
            "flywheel.rollout.sequence": decision.sequence,
            "flywheel.rollout.assignment": decision.assignment.describe(),
            "flywheel.rollout.decided_by": decision.decided_by,
        }
        parent = context_from_traceparent(decision.traceparent)
        with tracer.start_as_current_span(
            f"rollout.{decision.decision}", context=parent, attributes=attributes
        ):
            traceparent = current_traceparent()
        key = decision.worker_id
        events = [
            OutboxEvent(
                new_id(), self.topics.program_rollouts, key, changed_event(decision), traceparent
            ),
            OutboxEvent(new_id(), self.topics.alerts, key, alert_event(decision), traceparent),
        ]
        return Published(decision, traceparent, events)
