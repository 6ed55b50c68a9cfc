"""A running worker: calls its current program, emits events, hot-reloads, takes feedback.

Built by a ``@dspy_worker`` / ``@dspy_worker_optimized`` class or function (``Spec(...)``).
The call path reads the serving program once, runs it inside an OpenTelemetry span with a
per-call LM usage tracker, and enqueues one ``ExecutionRecorded`` event; everything touching
Kafka or the disk happens on the worker's own IO thread. During a canary each call goes to the
candidate or the stable version by its routing key (``worker(..., routing_key=session_id)``;
else the execution id): see ``sdk.programs``.
"""

from __future__ import annotations

import asyncio
import atexit
import contextvars
import logging
import time
from collections.abc import Callable
from typing import Any, Literal, NamedTuple

import dspy
from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.trace import INVALID_SPAN, Span, Status, StatusCode

from dspy_flywheel.compile.judge import exact_match, label_fields
from dspy_flywheel.compile.refs import Metric
from dspy_flywheel.compile.signature import output_fields as signature_outputs
from dspy_flywheel.contracts.events import Event, FeedbackRecorded, ProgramAcknowledged, now_ms
from dspy_flywheel.contracts.ids import fast_id as new_id
from dspy_flywheel.metrics import sdk as worker_metrics
from dspy_flywheel.sdk import tracing, usage
from dspy_flywheel.sdk.emitter import Emitter, ExecutionRoute, Pending
from dspy_flywheel.sdk.events import error_text, label_json, outputs_of
from dspy_flywheel.sdk.feedback import RecentExecutions, judge
from dspy_flywheel.sdk.programs import Outcome, ProgramSlot, Serving
from dspy_flywheel.sdk.runtime import Runtime
from dspy_flywheel.sdk.settings import WorkerSettings
from dspy_flywheel.sdk.triggers import OptimizationConfig

log = logging.getLogger(__name__)

_perf = time.perf_counter
ROUTING_KEY = "routing_key"  # call keyword: which key routes the call during a canary


class _Call(NamedTuple):
    """What a call's start hands to its end."""

    execution_id: str
    version: int | None
    started: float
    span: Span
    otel_token: contextvars.Token[Context] | None
    tracker: usage.CallUsage
    usage_token: contextvars.Token[Any]


class Worker:
    """One instance of a worker. Thread-safe; usable from sync and async code."""

    def __init__(
        self,
        *,
        worker_type: str,
        worker_id: str,
        factory: Callable[[], dspy.Module],
        settings: WorkerSettings | None = None,
        metric: Metric | None = None,
        output_fields: list[str] | None = None,
        optimization: OptimizationConfig | None = None,
        program_ref: str | None = None,
        metric_ref: str | None = None,
    ) -> None:
        self.worker_type = worker_type
        self.worker_id = worker_id
        self.instance_id = new_id()
        self.settings = settings or WorkerSettings()
        self.optimization = optimization
        self.program_ref = program_ref
        self.metric_ref = metric_ref
        self._metric = metric or exact_match
        self._slot = ProgramSlot(factory, self.settings.history_size, worker_id)
        # ``routing_key=`` picks the version on canary (sticky per key), unless it is an input
        self._routing_kw = not any(
            ROUTING_KEY in fields.get("inputs", []) for fields in self._slot.signature.values()
        )
        self._output_fields = output_fields or label_fields(signature_outputs(self._slot.signature))
        self._recent = RecentExecutions(self.settings.feedback_cache_size)
        self._last: contextvars.ContextVar[str | None] = contextvars.ContextVar(
            f"flywheel_last_execution_{worker_id}", default=None
        )
        self._key = worker_id.encode()
        self.failures = 0
        self._closed = False
        self._runtime: Runtime | None = None
        self._emitter: Emitter | None = None
        if self.settings.emit or self.settings.reload:
            self._runtime = Runtime(self, self._slot, self._report_outcome)
            if self._runtime.emitter is not None:
                self._attach(self._runtime.emitter)
        _live_workers.add(self)
        worker_metrics.watch(self)

    def _attach(self, emitter: Emitter) -> None:
        """Send this worker's events through ``emitter``."""
        optimization = self.optimization
        emitter.route_executions(
            ExecutionRoute(
                self.settings.topics.executions,
                self._key,
                (("auto_collect", b"false"),)
                if optimization is not None and not optimization.auto_collect_training
                else (),
            )
        )
        self._emitter = emitter

    # -- calls --------------------------------------------------------------------------------

    def __call__(self, **inputs: Any) -> Any:
        serving, call = self._start(inputs)
        try:
            result = serving.program(**inputs)
        except BaseException as exc:
            self._failed(call, exc, inputs)
            raise
        return self._succeeded(call, result, inputs)

    async def acall(self, **inputs: Any) -> Any:
        serving, call = self._start(inputs)
        try:
            program = serving.program
            if hasattr(type(program), "aforward"):
                result = await program.acall(**inputs)
            else:  # a sync-only module: run it off the event loop (context goes along)
                result = await asyncio.to_thread(program, **inputs)
        except BaseException as exc:
            self._failed(call, exc, inputs)
            raise
        return self._succeeded(call, result, inputs)

    def _start(self, inputs: dict[str, Any]) -> tuple[Serving, _Call]:
        """The program serving this call (during a canary, by its routing key), and the call
        opened: its span and its LM usage scope."""
        key = inputs.pop(ROUTING_KEY, None) if self._routing_kw else None
        route = self._slot.route  # read once: a reload swaps it, never changes it
        execution_id = new_id()
        serving = route.stable if route.split is None else route.choose(str(key or execution_id))
        version, started = serving.version, _perf()
        span = tracing.call_span(started)
        otel_token = None
        if span is not INVALID_SPAN:  # not the no-op span of a process without a tracing SDK
            if span.is_recording():
                tracing.annotate(span, self.worker_id, self.worker_type, execution_id, version)
            otel_token = tracing.enter(span)
        tracker, token = usage.begin()
        return serving, _Call(execution_id, version, started, span, otel_token, tracker, token)

    def _end(self, call: _Call) -> float:
        """Close the call's usage scope and span; returns its latency in ms."""
        latency_ms = (_perf() - call.started) * 1000
        usage.end(call.usage_token)
        tracing.leave(call.span, call.otel_token)
        return latency_ms

    def _succeeded(self, call: _Call, result: Any, inputs: dict[str, Any]) -> Any:
        latency_ms = self._end(call)
        execution_id = call.execution_id
        outputs = outputs_of(result)
        if isinstance(result, dspy.Prediction):
            object.__setattr__(result, "execution_id", execution_id)  # not output fields
            object.__setattr__(result, "program_version", call.version)
            tracker = call.tracker
            if tracker.wanted_by_user and result.get_lm_usage() is None:
                result.set_lm_usage(tracker.get_total_tokens())
        self._last.set(execution_id)
        self._recent.put(execution_id, inputs, outputs)
        self._emit_execution(call, inputs, outputs, None, latency_ms)
        return result

    def _failed(self, call: _Call, exc: BaseException, inputs: dict[str, Any]) -> None:
        self.failures += 1
        self._last.set(call.execution_id)
        span = call.span
        if span.is_recording():
            span.record_exception(exc)
            span.set_status(Status(StatusCode.ERROR, str(exc)))
        latency_ms = self._end(call)
        self._emit_execution(call, inputs, None, error_text(exc), latency_ms)

    def _emit_execution(
        self,
        call: _Call,
        inputs: dict[str, Any],
        outputs: dict[str, Any] | None,
        error: str | None,
        latency_ms: float,
    ) -> None:
        emitter = self._emitter
        if emitter is None:
            return
        tracker = call.tracker
        # A plain tuple (see emitter.submit_execution); its execution id is its event id.
        emitter.submit_execution(
            (
                self.worker_id,
                self.worker_type,
                call.version,
                call.execution_id,
                inputs,
                outputs,
                error,
                latency_ms,
                tracker.calls,
                tracker.prompt_tokens,
                tracker.completion_tokens,
                time.time_ns() // 1_000_000,
                tracing.origin_of(call.span),
            )
        )

    # -- what callers read --------------------------------------------------------------------

    @property
    def program(self) -> dspy.Module:
        """The module serving calls right now (replaced, never modified, by a reload)."""
        return self._slot.current.program

    @property
    def version(self) -> int | None:
        """The published version being served; None means the code's own program."""
        return self._slot.current.version

    @property
    def candidate(self) -> dict[str, Any] | None:
        """The version on canary beside ``version`` and its share of the routing keys."""
        route = self._slot.route
        if route.candidate is None or route.split is None:
            return None
        return {"version": route.candidate.version, "share": route.split.share}

    @property
    def pinned(self) -> int | Literal["code"] | None:
        return self._slot.pinned

    @property
    def last_execution_id(self) -> str | None:
        """The execution id of the latest call made in this thread / task."""
        return self._last.get()

    @property
    def signature(self) -> dict[str, dict[str, list[str]]]:
        return self._slot.signature

    def stats(self) -> dict[str, Any]:
        """Counters of this instance: events enqueued / sent / spooled / replayed /
        ``overflow_dropped`` (exact), spool backlog, broker state, reload outcomes.
        ``enqueued`` and ``failures`` may undercount slightly under many calling threads."""
        return {
            "worker_id": self.worker_id,
            "instance_id": self.instance_id,
            "version": self.version,
            "pinned": self.pinned,
            "failures": self.failures,
            "known_versions": self._slot.known_versions(),
            "candidate": self.candidate,
            **(self._runtime.stats() if self._runtime is not None else {}),
        }

    # -- feedback -----------------------------------------------------------------------------

    def feedback(
        self, execution_id: str, label: Any = None, score: float | None = None, source: str = "user"
    ) -> float | None:
        """Emit a FeedbackRecorded for ``execution_id``; returns the score sent.

        ``label``: the expected outputs, as a dict of output fields (or a bare value when the
        worker has one output field). Without ``score``, the worker's metric scores the
        execution's recorded outputs against the label, if this instance still remembers them.
        """
        label_obj, score = judge(
            self._recent.get(execution_id), self._output_fields, self._metric, label, score
        )
        event = FeedbackRecorded(
            execution_id=execution_id,
            worker_id=self.worker_id,
            label=label_json(label_obj),
            score=score,
            source=source,
            timestamp_ms=now_ms(),
        )
        self._publish(self.settings.topics.feedback, event)
        return event.score

    # -- program control ----------------------------------------------------------------------

    def pin(self, version: int | Literal["code"] | None = None) -> int | None:
        """Keep serving ``version`` (default: the current one; "code": the code's program)."""
        return self._acted(self._slot.pin(version))

    def unpin(self) -> int | None:
        """Follow published programs again; returns the version now served."""
        return self._acted(self._slot.unpin())

    def rollback(self) -> int | None:
        """Serve the program served before the current one (and pin it); returns its version."""
        return self._acted(self._slot.rollback())

    def _acted(self, outcome: Outcome) -> int | None:
        self._report_outcome(outcome)
        return outcome.version

    def _report_outcome(self, outcome: Outcome) -> None:
        level = logging.WARNING if outcome.status == "refused" else logging.INFO
        log.log(
            level,
            "%s: program %s (version %s)%s",
            self.worker_id,
            outcome.status,
            outcome.version,
            f": {outcome.reason}" if outcome.reason else "",
        )
        event = ProgramAcknowledged(
            worker_id=self.worker_id,
            instance_id=self.instance_id,
            version=outcome.version,
            status=outcome.status,
            reason=outcome.reason,
            timestamp_ms=now_ms(),
        )
        self._publish(self.settings.topics.program_acks, event)

    def _publish(self, topic: str, event: Event) -> None:
        if self._emitter is None:
            return
        span = trace.get_current_span()
        self._emitter.submit(
            Pending(topic, self._key, event, None, tracing.origin_of(span), new_id())
        )

    # -- lifecycle ----------------------------------------------------------------------------

    def close(self, timeout: float | None = None) -> None:
        """Flush events (deliver or spool them) and stop background work. Idempotent."""
        if self._closed:
            return
        self._closed = True
        _live_workers.discard(self)
        if self._runtime is not None:
            self._runtime.close(self.settings.close_timeout_s if timeout is None else timeout)

    async def aclose(self, timeout: float | None = None) -> None:  # noqa: ASYNC109  # the flush bound, as close()
        """``close`` for async code: the flush waits in a thread, not on your event loop."""
        await asyncio.to_thread(self.close, timeout)

    def __enter__(self) -> Worker:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<Worker {self.worker_id!r} type={self.worker_type!r} version={self.version}>"


_live_workers: set[Worker] = set()  # closed (flushed) at interpreter exit


@atexit.register
def _close_live_workers() -> None:
    for worker in list(_live_workers):
        try:
            worker.close()
        except Exception:
            log.exception("closing %s at exit failed", worker.worker_id)
