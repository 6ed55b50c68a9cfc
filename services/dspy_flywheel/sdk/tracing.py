"""One OpenTelemetry span per worker call, and the W3C traceparent its events carry.

Library code: only ``opentelemetry-api``. Without an SDK installed the span is a no-op, so it is
not made current (saves the context switch) and the event gets the caller's trace, if any, or
a new one from the emitter.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar, Token

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.trace import INVALID_SPAN, ProxyTracer, ProxyTracerProvider, Span, Tracer

SPAN_NAME = "dspy_flywheel.worker.call"
tracer = trace.get_tracer("dspy_flywheel.sdk")
_random = random.Random()


_RECHECK_S = 1.0


class _SdkState:
    """Whether an OpenTelemetry SDK tracer provider is installed, looked up at most once a
    second: without one every span is a no-op, and skipping it saves the call path a few
    microseconds. A provider installed after the first call is used within a second."""

    tracer: Tracer | None = None
    checked_at = float("-inf")


def call_span(now: float) -> Span:
    """A new span for a worker call (``now``: ``time.perf_counter()``), or the no-op span."""
    if now - _SdkState.checked_at > _RECHECK_S:
        no_sdk = isinstance(tracer, ProxyTracer) and isinstance(
            trace.get_tracer_provider(), ProxyTracerProvider
        )
        _SdkState.tracer = None if no_sdk else tracer
        _SdkState.checked_at = now
    live = _SdkState.tracer
    return INVALID_SPAN if live is None else live.start_span(SPAN_NAME)


TraceOrigin = str | Span | Context | None


def _current_context_getter() -> Callable[[], Context]:
    """``otel_context.get_current`` without its two wrapper calls: the runtime context's own
    ContextVar, where the API keeps it (the API function otherwise)."""
    runtime = getattr(otel_context, "_RUNTIME_CONTEXT", None)
    var = getattr(runtime, "_current_context", None)
    return var.get if isinstance(var, ContextVar) else otel_context.get_current


current_context = _current_context_getter()


def origin_of(span: Span) -> TraceOrigin:
    """What an event's traceparent is made from, captured cheaply on the call path (the
    emitter resolves it later): the call's span, or without an SDK the caller's context
    (None when it is empty: nothing to continue)."""
    if span is INVALID_SPAN:
        return current_context() or None
    return span


def resolve_traceparent(origin: TraceOrigin) -> str | None:
    """``origin_of``'s result as a W3C traceparent: the span's own, or a new span id in the
    caller's trace, or None (the emitter then starts a new sampled trace, so services
    downstream can still join their spans to this call)."""
    if origin is None or isinstance(origin, str):
        return origin
    if isinstance(origin, Span):
        ctx = origin.get_span_context()
        if not ctx.is_valid:
            return None
        return f"00-{ctx.trace_id:032x}-{ctx.span_id:016x}-{ctx.trace_flags:02x}"
    parent = trace.get_current_span(origin).get_span_context()
    if parent.is_valid:
        return f"00-{parent.trace_id:032x}-{_random.getrandbits(64) or 1:016x}-01"
    return None


def new_traceparent() -> str:
    """A new sampled trace for an event whose call had no trace context."""
    return f"00-{_random.getrandbits(128) or 1:032x}-{_random.getrandbits(64) or 1:016x}-01"


def enter(span: Span) -> Token[Context] | None:
    """Make ``span`` current (skipped for the no-op span of a process without an SDK)."""
    if not span.get_span_context().is_valid:
        return None
    return otel_context.attach(trace.set_span_in_context(span))


def leave(span: Span, token: Token[Context] | None) -> None:
    if token is not None:
        otel_context.detach(token)
    span.end()


def annotate(
    span: Span, worker_id: str, worker_type: str, execution_id: str, version: int | None
) -> None:
    span.set_attribute("flywheel.worker_id", worker_id)
    span.set_attribute("flywheel.worker_type", worker_type)
    span.set_attribute("flywheel.execution_id", execution_id)
    if version is not None:
        span.set_attribute("flywheel.program_version", version)


RELOAD_SPAN = "dspy_flywheel.worker.reload"


@contextmanager
def reload_span(worker_id: str, version: int, traceparent: str | None) -> Iterator[Span]:
    """The span of one hot reload, a child of the ``ProgramUpdated`` event's trace (the
    optimization lifecycle). The parent context stays current inside, so the acknowledgement
    emitted there joins that trace even in a process without a tracing SDK."""
    from dspy_flywheel.telemetry import context_from_traceparent

    token = otel_context.attach(context_from_traceparent(traceparent))
    try:
        with tracer.start_as_current_span(
            RELOAD_SPAN,
            attributes={"flywheel.worker_id": worker_id, "flywheel.program_version": version},
        ) as span:
            yield span
    finally:
        otel_context.detach(token)
