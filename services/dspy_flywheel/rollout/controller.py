"""The rollout controller's decisions: pure, deterministic given the same events and clock.

Fed with published versions (``on_published``), labeled live outcomes per version
(``on_outcome``), operator commands (``on_command``) and the clock (``tick``), it keeps one
``WorkerRollout`` per worker and returns ``Decision``s; the service publishes each as a
``RolloutChanged`` (every instance's new assignment), an ``Alert``, an audit row and a span.

- A version published as a *candidate* starts a canary at the worker's share (unless the
  worker is pinned: it waits; or it was rolled back or retired before: ignored; or canaries
  are disabled for the worker: promoted at once, untested).
- During a canary each labeled outcome updates its version's counts and the sequential test
  decides: promote (the guard starts), roll back, or keep the current version at the cap.
- After a promotion the guard compares the promoted version since the promotion with its
  predecessor's canary record; a significant drop rolls back to the predecessor, once. The
  restored version is not guarded (no ping-pong) and a rolled-back version is never promoted
  again automatically.
- A pinned worker gets no automatic decision at all; operators promote, roll back, pin and
  unpin by command.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from dspy_flywheel.contracts.events import RolloutCommand
from dspy_flywheel.rollout.config import RolloutPolicy
from dspy_flywheel.rollout.sequential import LiveDecision, decide_canary, decide_guard
from dspy_flywheel.rollout.state import Assignment, WorkerRollout

log = logging.getLogger(__name__)

# The alert severity of a decision: "info" unless listed (canary_started, share_changed,
# promoted, pinned, unpinned, served).
SEVERITY = {"kept_current": "warning", "rolled_back": "critical", "guard_rolled_back": "critical"}


class CommandRefused(ValueError):
    """An operator command that cannot apply (unknown version, nothing to promote, ...)."""

    retriable = False


@dataclass(frozen=True)
class Decision:
    worker_id: str
    decision: str
    assignment: Assignment
    sequence: int
    reason: str
    evidence: dict[str, Any]
    decided_by: str
    traceparent: str | None  # the lifecycle trace this decision belongs to
    job_id: str | None
    at_ms: int
    command_id: str | None = None

    @property
    def severity(self) -> str:
        return SEVERITY.get(self.decision, "info")


@dataclass
class RolloutController:
    policy_for: Callable[[str], RolloutPolicy] = field(default=lambda w: RolloutPolicy(worker_id=w))
    states: dict[str, WorkerRollout] = field(default_factory=dict)
    dirty: set[str] = field(default_factory=set)

    def state(self, worker_id: str) -> WorkerRollout:
        found = self.states.get(worker_id)
        if found is None:
            found = self.states[worker_id] = WorkerRollout(worker_id)
        return found

    # -- events ----------------------------------------------------------------------------

    def on_published(
        self,
        worker_id: str,
        version: int,
        rollout: str,
        at_ms: int,
        *,
        job_id: str | None = None,
        traceparent: str | None = None,
    ) -> list[Decision]:
        """A ``ProgramUpdated``: ``rollout`` is ``candidate`` (canary) or ``serve`` (at once)."""
        s = self.state(worker_id)
        if version in s.known:
            return []  # a redelivered event
        s.known = sorted({*s.known, version})
        self.dirty.add(worker_id)
        if s.pinned:
            if rollout == "candidate":
                s.waiting = version
            log.info("%s: v%d published while pinned; held", worker_id, version)
            return []
        if rollout != "candidate":
            s.candidate, s.share, s.stable = None, 0.0, version
            s.begin("idle", at_ms)
            why = f"v{version} was published to serve at once (no canary)"
            return [self._decide(s, "served", why, {}, "publisher", at_ms, job_id, traceparent)]
        return self._start_canary(s, version, at_ms, job_id, traceparent)

    def on_outcome(
        self, worker_id: str, version: int | None, correct: bool, at_ms: int
    ) -> list[Decision]:
        """One labeled live call of ``version`` (None: the code's program)."""
        s = self.states.get(worker_id)
        if s is None:
            return []
        if version == s.stable:
            s.stable_arm = s.stable_arm.add(correct)
        elif version is not None and version == s.candidate:
            s.candidate_arm = s.candidate_arm.add(correct)
        else:
            return []  # a version no longer serving (calls still in flight, late labels)
        self.dirty.add(worker_id)
        if s.pinned:
            return []
        if s.phase == "canary":
            return self._judge_canary(s, at_ms)
        if s.phase == "guard":
            return self._judge_guard(s, at_ms)
        return []

    def tick(self, at_ms: int) -> list[Decision]:
        """Time-driven: a canary past its maximum duration keeps the current version."""
        out: list[Decision] = []
        for s in self.states.values():
            if s.phase == "canary" and not s.pinned:
                out += self._judge_canary(s, at_ms)
        return out

    def on_policy(self, worker_id: str, at_ms: int) -> list[Decision]:
        """The worker's settings changed: a running canary takes the new share now."""
        s = self.states.get(worker_id)
        if s is None or s.phase != "canary" or s.pinned:
            return []
        share = self.policy_for(worker_id).share
        if share == s.share:
            return []
        s.share = share
        why = f"canary share set to {share:.0%}"
        return [self._decide(s, "share_changed", why, {}, "operator", at_ms)]

    # -- operator commands -----------------------------------------------------------------

    def on_command(self, command: RolloutCommand, at_ms: int) -> list[Decision]:
        """Apply an operator's command; CommandRefused when it cannot apply."""
        s = self.state(command.worker_id)
        handler = {
            "promote": self._promote_cmd,
            "rollback": self._rollback_cmd,
            "pin": self._pin_cmd,
            "unpin": self._unpin_cmd,
        }.get(command.command)
        if handler is None:
            raise CommandRefused(f"unknown command {command.command!r}")
        if command.version is not None and command.version not in s.known:
            raise CommandRefused(
                f"{command.worker_id} has no published version {command.version} "
                f"(known: {s.known or 'none'})"
            )
        decisions = handler(s, command, at_ms)
        self.dirty.add(command.worker_id)
        return [Decision(**{**d.__dict__, "command_id": command.command_id}) for d in decisions]

    def _promote_cmd(self, s: WorkerRollout, cmd: RolloutCommand, at_ms: int) -> list[Decision]:
        target = cmd.version if cmd.version is not None else s.candidate
        if target is None:
            raise CommandRefused(f"{s.worker_id}: no candidate to promote; name a version")
        why = f"{cmd.requested_by} promoted v{target}" + (f": {cmd.reason}" if cmd.reason else "")
        if target == s.candidate and s.phase == "canary":
            return [self._promote(s, why, {}, cmd.requested_by, at_ms)]
        if s.candidate is not None:
            s.retired = sorted({*s.retired, s.candidate})
        s.candidate, s.share, s.stable = None, 0.0, target
        s.begin("idle", at_ms)
        return [self._decide(s, "promoted", why, {}, cmd.requested_by, at_ms)]

    def _rollback_cmd(self, s: WorkerRollout, cmd: RolloutCommand, at_ms: int) -> list[Decision]:
        note = f": {cmd.reason}" if cmd.reason else ""
        if s.candidate is not None and cmd.version is None:
            why = f"{cmd.requested_by} rolled back candidate v{s.candidate}{note}"
            return [self._drop_candidate(s, "rolled_back", why, {}, cmd.requested_by, at_ms)]
        target = cmd.version if cmd.version is not None else self._before(s)
        if target == s.stable:
            raise CommandRefused(f"{s.worker_id} already serves {_name(target)}")
        if s.stable is not None:
            s.rolled_back = sorted({*s.rolled_back, s.stable})
        why = f"{cmd.requested_by} rolled back {_name(s.stable)} to {_name(target)}{note}"
        s.candidate, s.share, s.stable, s.previous = None, 0.0, target, None
        s.begin("idle", at_ms)
        return [self._decide(s, "rolled_back", why, {}, cmd.requested_by, at_ms)]

    def _pin_cmd(self, s: WorkerRollout, cmd: RolloutCommand, at_ms: int) -> list[Decision]:
        target = cmd.version if cmd.version is not None else s.stable
        if s.candidate is not None:
            s.waiting = s.candidate  # its canary starts over when the worker is unpinned
        s.candidate, s.share, s.stable, s.pinned = None, 0.0, target, True
        s.begin("idle", at_ms)
        why = f"{cmd.requested_by} pinned {_name(target)}: no automatic change until unpinned"
        return [self._decide(s, "pinned", why, {}, cmd.requested_by, at_ms)]

    def _unpin_cmd(self, s: WorkerRollout, cmd: RolloutCommand, at_ms: int) -> list[Decision]:
        if not s.pinned:
            raise CommandRefused(f"{s.worker_id} is not pinned")
        s.pinned = False
        why = f"{cmd.requested_by} unpinned the worker"
        out = [self._decide(s, "unpinned", why, {}, cmd.requested_by, at_ms)]
        waiting, s.waiting = s.waiting, None
        if waiting is not None and waiting != s.stable:
            out += self._start_canary(s, waiting, at_ms, s.job_id, s.traceparent)
        return out

    # -- the tests ---------------------------------------------------------------------------

    def _judge_canary(self, s: WorkerRollout, at_ms: int) -> list[Decision]:
        policy = self.policy_for(s.worker_id)
        elapsed_s = (at_ms - (at_ms if s.started_ms is None else s.started_ms)) / 1000
        live = decide_canary(s.stable_arm, s.candidate_arm, policy.sequential(), elapsed_s)
        evidence = _evidence(live, s)
        if live.outcome == "promote":
            return [self._promote(s, live.reason, evidence, "controller", at_ms)]
        dropped = {"rollback": "rolled_back", "keep_current": "kept_current"}.get(live.outcome)
        if dropped is None:
            return []
        return [self._drop_candidate(s, dropped, live.reason, evidence, "controller", at_ms)]

    def _judge_guard(self, s: WorkerRollout, at_ms: int) -> list[Decision]:
        live = decide_guard(s.baseline, s.stable_arm, self.policy_for(s.worker_id).sequential())
        if live.outcome != "rollback":
            return []
        evidence = _evidence(live, s)
        dropped = s.stable
        if dropped is not None:
            s.rolled_back = sorted({*s.rolled_back, dropped})
        s.stable, s.previous = s.previous, None
        s.begin("idle", at_ms)  # the restored version is not guarded: no ping-pong
        why = f"v{dropped} rolled back to {_name(s.stable)}: {live.reason}"
        return [self._decide(s, "guard_rolled_back", why, evidence, "controller", at_ms)]

    # -- transitions -------------------------------------------------------------------------

    def _start_canary(
        self,
        s: WorkerRollout,
        version: int,
        at_ms: int,
        job_id: str | None,
        traceparent: str | None,
    ) -> list[Decision]:
        if version in s.rolled_back or version in s.retired:
            log.info(
                "%s: v%d was rolled back or retired before; not tried again", s.worker_id, version
            )
            return []
        policy = self.policy_for(s.worker_id)
        s.job_id, s.traceparent = job_id, traceparent
        superseded = s.candidate
        if superseded is not None:
            s.retired = sorted({*s.retired, superseded})
        if not policy.enabled:
            s.candidate, s.share, s.previous, s.stable = None, 0.0, s.stable, version
            s.begin("idle", at_ms)
            why = f"v{version} promoted at once: canaries are disabled for this worker"
            return [self._decide(s, "promoted", why, {}, "controller", at_ms)]
        s.candidate, s.share = version, policy.share
        s.begin("canary", at_ms)
        why = f"v{version} starts as a candidate beside {_name(s.stable)}"
        if superseded is not None:
            why += f" (it supersedes candidate v{superseded})"
        evidence = {"policy": policy.to_record()}
        return [self._decide(s, "canary_started", why, evidence, "controller", at_ms)]

    def _promote(
        self, s: WorkerRollout, why: str, evidence: dict[str, Any], by: str, at_ms: int
    ) -> Decision:
        s.baseline, s.previous = s.stable_arm, s.stable
        s.stable, s.candidate, s.share = s.candidate, None, 0.0
        s.begin("guard", at_ms)
        return self._decide(s, "promoted", why, evidence, by, at_ms)

    def _drop_candidate(
        self,
        s: WorkerRollout,
        decision: str,
        why: str,
        evidence: dict[str, Any],
        by: str,
        at_ms: int,
    ) -> Decision:
        dropped = s.candidate
        if dropped is not None:
            bucket = s.rolled_back if decision == "rolled_back" else s.retired
            bucket[:] = sorted({*bucket, dropped})
        s.candidate, s.share = None, 0.0
        s.begin("idle", at_ms)
        return self._decide(s, decision, why, evidence, by, at_ms)

    def _decide(
        self,
        s: WorkerRollout,
        decision: str,
        why: str,
        evidence: dict[str, Any],
        by: str,
        at_ms: int,
        job_id: str | None = None,
        traceparent: str | None = None,
    ) -> Decision:
        s.sequence += 1
        self.dirty.add(s.worker_id)
        made = Decision(
            s.worker_id,
            decision,
            s.assignment,
            s.sequence,
            why,
            evidence,
            by,
            traceparent or s.traceparent,
            job_id or s.job_id,
            at_ms,
        )
        s.remember(
            {
                "sequence": made.sequence,
                "decision": decision,
                "assignment": made.assignment.describe(),
                "reason": why,
                "decided_by": by,
                "at_ms": at_ms,
            }
        )
        log.info("%s: %s: %s", s.worker_id, decision, why)
        return made

    @staticmethod
    def _before(s: WorkerRollout) -> int | None:
        """What an operator rollback without a version returns to."""
        if s.phase == "guard":
            return s.previous
        older = [v for v in s.known if s.stable is None or v < s.stable]
        older = [v for v in older if v not in s.rolled_back]
        return older[-1] if older else None


def _name(version: int | None) -> str:
    return "the code's program" if version is None else f"v{version}"


def _evidence(live: LiveDecision, s: WorkerRollout) -> dict[str, Any]:
    return {
        **live.record(),
        "phase": s.phase,
        "stable_version": s.stable,
        "candidate_version": s.candidate,
    }
