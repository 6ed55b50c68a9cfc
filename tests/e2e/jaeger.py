"""Reading the observed lifecycle's trace back from the stack's Jaeger (its query API)."""

from __future__ import annotations

import os
import time
from typing import Any

import httpx
import pytest

from tests.e2e.observed_worker import INSTANCES

JAEGER = os.environ.get("FLYWHEEL_JAEGER_URL")
RELOAD = "dspy_flywheel.worker.reload"
# decision, job, snapshot, compile (>= 1 trial inside), evaluate, gate, publish, the reloads
LIFECYCLE_SPANS = 8 + INSTANCES

needs_jaeger = pytest.mark.skipif(
    os.environ.get("FLYWHEEL_JAEGER") == "0", reason="stack started with FLYWHEEL_JAEGER=0"
)


def jaeger_trace(trace_id: str, within_s: float = 30) -> dict[str, Any] | None:
    """The trace as Jaeger returns it, or None if it has not arrived within ``within_s``."""
    assert JAEGER, 'FLYWHEEL_JAEGER_URL unset: run with eval "$(ops/stack env)"'
    deadline = time.monotonic() + within_s
    while True:
        reply = httpx.get(f"{JAEGER}/api/traces/{trace_id}", timeout=10)
        if reply.status_code == 200:
            (found,) = reply.json()["data"]
            return found  # type: ignore[no-any-return]  # JSON
        if time.monotonic() > deadline:
            return None
        time.sleep(0.5)


def lifecycle_trace(trace_id: str, within_s: float = 60) -> dict[str, Any]:
    """The lifecycle's trace once every process's spans are in: each instance's reload, the
    expected count, and the same span count on two reads a second apart."""
    deadline = time.monotonic() + within_s
    seen = -1
    while True:  # spans of several processes arrive in batches
        found = jaeger_trace(trace_id, within_s=max(deadline - time.monotonic(), 0))
        names = [s["operationName"] for s in (found or {}).get("spans", [])]
        if found and names.count(RELOAD) >= INSTANCES and len(names) >= LIFECYCLE_SPANS - 1:
            if len(names) == seen:
                return found
            seen = len(names)
        assert time.monotonic() < deadline, f"trace {trace_id} incomplete: {names}"
        time.sleep(1)
