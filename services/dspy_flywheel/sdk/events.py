"""Records a worker emits, built on the IO loop from what the call path captured.

The call path captures an execution as a plain tuple with ``ExecutionPayload``'s layout (the
cheapest object to build there); the IO loop views it as an ``ExecutionPayload``, and
``execution_event`` turns it into the ``ExecutionRecorded`` event.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from typing import Any, NamedTuple

from dspy import Prediction
from pydantic import BaseModel

from dspy_flywheel.contracts.events import ExecutionRecorded
from dspy_flywheel.sdk.tracing import TraceOrigin


class ExecutionPayload(NamedTuple):
    worker_id: str
    worker_type: str
    program_version: int | None
    execution_id: str
    inputs: dict[str, Any]
    outputs: dict[str, Any] | None
    error: str | None
    latency_ms: float
    lm_calls: int
    prompt_tokens: int
    completion_tokens: int
    timestamp_ms: int
    trace: TraceOrigin = None  # what the event's traceparent is made from (tracing.origin_of)


ExecutionRow = tuple[
    str, str, int | None, str, dict[str, Any], dict[str, Any] | None, str | None,
    float, int, int, int, int, TraceOrigin,
]  # fmt: skip  # ExecutionPayload's fields, as the call path builds them


def outputs_of(result: Any) -> dict[str, Any]:
    """A call's outputs as a dict (a shallow copy: later edits by the caller don't leak in)."""
    if isinstance(result, Prediction):
        store = getattr(result, "_store", None)
        if type(store) is dict:  # Example.items() without its per-call list: same result
            outputs = dict(store)
            for key in store:
                if key.startswith("dspy_"):  # DSPy's internal fields are not outputs
                    del outputs[key]
            return outputs
        return dict(result.items())
    return dict(result) if isinstance(result, Mapping) else {"output": result}


def jsonable(value: Any) -> Any:
    """``json.dumps`` fallback: pydantic models, dataclasses, DSPy examples, else ``str``."""
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.asdict(value)
    to_dict = getattr(value, "toDict", None)
    if callable(to_dict):
        return to_dict()
    return list(value) if isinstance(value, (set, frozenset, tuple)) else str(value)


_json = json.JSONEncoder(default=jsonable, ensure_ascii=False).encode


def execution_event(p: ExecutionPayload) -> ExecutionRecorded:
    return ExecutionRecorded(
        worker_id=p.worker_id,
        worker_type=p.worker_type,
        program_version=None if p.program_version is None else str(p.program_version),
        execution_id=p.execution_id,
        inputs_json=_json(p.inputs),
        outputs_json=None if p.outputs is None else _json(p.outputs),
        success=p.error is None,
        error=p.error,
        latency_ms=p.latency_ms,
        lm_calls=p.lm_calls,
        prompt_tokens=p.prompt_tokens,
        completion_tokens=p.completion_tokens,
        timestamp_ms=p.timestamp_ms,
    )


def label_json(label: Mapping[str, Any] | None) -> str | None:
    """A feedback label as the ``FeedbackRecorded`` carries it (JSON text)."""
    return None if label is None else _json(dict(label))


def error_text(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"[:2000]
