"""Labeled live outcomes per program version: each execution meets its feedback.

Executions carry the version that served them (``program_version``, a string; null = the
code's program); feedback carries a label or a score. An outcome is judged by the same rules as
everywhere (``compile.judge`` through the trigger's ``label_matches``): a score is correct from
0.5, a label is compared with the execution's outputs. Each execution counts once: the first
judgement wins (a later label for the same call changes nothing), so arms never double count.
Executions wait ``ttl_s`` for their feedback in a bounded cache; feedback that arrives first
waits ``pending_ttl_s`` for its execution.
"""

from __future__ import annotations

from dataclasses import dataclass

from dspy_flywheel.compile.judge import score_correct
from dspy_flywheel.contracts.events import ExecutionRecorded, FeedbackRecorded
from dspy_flywheel.trigger.correctness import Expiring, label_matches


@dataclass(frozen=True)
class Outcome:
    worker_id: str
    version: int | None
    correct: bool
    execution_id: str
    at_ms: int


@dataclass(frozen=True)
class _Execution:
    worker_id: str
    version: int | None
    outputs_json: str | None
    at_ms: int


def parse_version(value: str | None) -> int | None:
    """``program_version`` as an int (None: the code's program); ValueError when malformed."""
    return None if value is None else int(value)


class OutcomeJoin:
    def __init__(
        self, max_entries: int = 200_000, ttl_s: float = 3600.0, pending_ttl_s: float = 600.0
    ) -> None:
        self._executions: Expiring[_Execution] = Expiring(max_entries, ttl_s)
        self._pending: Expiring[FeedbackRecorded] = Expiring(max_entries, pending_ttl_s)

    def on_execution(self, event: ExecutionRecorded) -> Outcome | None:
        execution_id = event.execution_id
        execution = _Execution(
            event.worker_id,
            parse_version(event.program_version),
            event.outputs_json if event.success else None,
            event.timestamp_ms,
        )
        score = event.metric_score
        if score is not None:
            self._pending.take(execution_id)
            return self._outcome(execution, execution_id, score_correct(score))
        feedback = self._pending.take(execution_id)
        if feedback is not None:
            return self._judge(execution, execution_id, feedback)
        self._executions.put(execution_id, execution)
        return None

    def on_feedback(self, event: FeedbackRecorded) -> Outcome | None:
        execution_id = event.execution_id
        execution = self._executions.take(execution_id)
        if execution is None:
            self._pending.put(execution_id, event)
            return None
        return self._judge(execution, execution_id, event)

    def _judge(
        self, execution: _Execution, execution_id: str, feedback: FeedbackRecorded
    ) -> Outcome | None:
        score, label = feedback.score, feedback.label
        if score is not None:
            return self._outcome(execution, execution_id, score_correct(score))
        verdict = None if label is None else label_matches(label, execution.outputs_json)
        return None if verdict is None else self._outcome(execution, execution_id, verdict)

    @staticmethod
    def _outcome(execution: _Execution, execution_id: str, correct: bool) -> Outcome:
        return Outcome(
            execution.worker_id, execution.version, correct, execution_id, execution.at_ms
        )
