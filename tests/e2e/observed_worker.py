"""A worker process for the observability test (run: ``python -m tests.e2e.observed_worker``).

Two instances of ``loop-bfs`` (same worker id, as two replicas would be) serve labeled tickets
on the fake LM, alternating, until both serve a published version, then ``AFTER_CALLS`` more.
It exports its spans over OTLP (``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT``), serves its SDK metrics
on ``FLYWHEEL_WORKER_METRICS_PORT``, prints one JSON line with what it saw, and keeps serving
``/metrics`` until its stdin closes.
"""

from __future__ import annotations

import itertools
import json
import sys
import time
from typing import Any

import dspy
from opentelemetry import trace

from dspy_flywheel.telemetry import setup_tracing
from tests.e2e.harness import serve_labeled
from tests.e2e.loop_worker import BFS
from tests.fixtures.fake_task import make_lm, tickets

INSTANCES = 2
AFTER_CALLS = 40
LATE_CALLS = 3
PACE_S = 0.08
DEADLINE_S = 280.0


def _with_pii(i: int, ticket: dict[str, Any]) -> tuple[dict[str, Any], str]:
    """Every fifth ticket carries an e-mail address (the collector must remove it)."""
    text = ticket["inputs"]["text"] + (f" Reach me at user{i}@example.com." if i % 5 == 0 else "")
    return {"text": text}, ticket["outputs"]["label"]


def main() -> int:
    setup_tracing("dspy-flywheel-worker")
    dspy.configure(lm=make_lm())
    workers = [BFS.create() for _ in range(INSTANCES)]
    traffic = itertools.cycle([_with_pii(i, t) for i, t in enumerate(tickets(400, seed=5))])
    before: list[float] = []
    calls = 0
    deadline = time.monotonic() + DEADLINE_S
    while not all(w.version is not None for w in workers):
        if time.monotonic() > deadline:
            print(json.dumps({"error": "no reload in time", "calls": calls}), flush=True)
            return 1
        worker = workers[calls % INSTANCES]
        outcome = serve_labeled(worker, [next(traffic)], "label")
        if worker.version is None:
            before.append(outcome)
        calls += 1
        time.sleep(PACE_S)
    after = [
        serve_labeled(workers[i % INSTANCES], [next(traffic)], "label") for i in range(AFTER_CALLS)
    ]
    # A third instance closed before its events went out (they gather for linger_ms): they
    # stay in its spool for its next start (spooled, spool bytes); an event after close is
    # dropped. Both are counted.
    late = BFS.create()
    for inputs, _label in [next(traffic) for _ in range(LATE_CALLS)]:
        late(**inputs)
    late.close(timeout=0)
    late.feedback("an-execution-after-close", label="billing")
    provider = trace.get_tracer_provider()
    force_flush = getattr(provider, "force_flush", None)
    if force_flush is not None:
        force_flush()
    report = {
        "versions": [w.version for w in workers],
        "instances": [w.instance_id for w in workers],
        "calls": calls + AFTER_CALLS,
        "accuracy_before": sum(before) / max(1, len(before)),
        "accuracy_after": sum(after) / len(after),
        "stats": [w.stats() for w in (*workers, late)],
    }
    print(json.dumps(report, default=str), flush=True)
    sys.stdin.read()  # the test scrapes /metrics meanwhile
    for worker in workers:
        worker.close(timeout=5)
    return 0


if __name__ == "__main__":
    sys.exit(main())
