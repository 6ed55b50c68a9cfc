"""Where the worker wrapper's per-call cost goes: the call path built up one step at a time.

    python tests/bench/worker_overhead_steps.py [--rounds 3000] [--latency-ms 1.0]

A diagnostic beside ``worker_overhead.py`` (which gives the headline ratio). Variants, each
adding one step of ``Worker.__call__`` to the one before, on the same module and fake LM:

    bare      the worker's serving program, called through a function
    ids       + execution id, start time, span check
    outputs   + outputs copy, execution id on the prediction
    memory    + last-execution id, feedback cache
    event     + the ExecutionRecorded row handed to the emitter (IO thread running)
    worker    the real ``Worker.__call__`` (adds the per-call LM usage scope)

Calls are interleaved one by one in rotating order after a steady-state warm-up (see
``worker_overhead.py``), so slow drifts of the machine hit every variant alike; figures are the
medians of main-thread CPU per call against the plain module. The steps call the worker's
private parts: this script follows ``worker.py``'s call path and must change with it.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from worker_overhead import steady_pair  # the script's folder

from dspy_flywheel.contracts.ids import fast_id
from dspy_flywheel.sdk import tracing
from dspy_flywheel.sdk.events import outputs_of
from dspy_flywheel.sdk.worker import Worker

Call = Callable[..., Any]


def steps(w: Worker) -> dict[str, Call]:
    perf = time.perf_counter
    slot, emitter = w._slot, w._emitter
    assert emitter is not None, "the worker must emit (FLYWHEEL_WORKER_EMIT unset)"

    def bare(**inputs: Any) -> Any:
        return slot.current.program(**inputs)

    def ids(**inputs: Any) -> Any:
        serving, execution_id, started = slot.current, fast_id(), perf()
        tracing.call_span(started)
        result = serving.program(**inputs)
        _ = (perf() - started) * 1000, execution_id
        return result

    def outputs(**inputs: Any) -> Any:
        serving, execution_id, started = slot.current, fast_id(), perf()
        tracing.call_span(started)
        result = serving.program(**inputs)
        _ = (perf() - started) * 1000
        _ = outputs_of(result)
        object.__setattr__(result, "execution_id", execution_id)
        return result

    def memory(**inputs: Any) -> Any:
        serving, execution_id, started = slot.current, fast_id(), perf()
        tracing.call_span(started)
        result = serving.program(**inputs)
        _ = (perf() - started) * 1000
        out = outputs_of(result)
        object.__setattr__(result, "execution_id", execution_id)
        w._last.set(execution_id)
        w._recent.put(execution_id, inputs, out)
        return result

    def event(**inputs: Any) -> Any:
        serving, execution_id, started = slot.current, fast_id(), perf()
        span = tracing.call_span(started)
        result = serving.program(**inputs)
        latency_ms = (perf() - started) * 1000
        out = outputs_of(result)
        object.__setattr__(result, "execution_id", execution_id)
        w._last.set(execution_id)
        w._recent.put(execution_id, inputs, out)
        row = (w.worker_id, w.worker_type, serving.version, execution_id, inputs, out, None)
        emitter.submit_execution(
            (*row, latency_ms, 0, 0, 0, time.time_ns() // 1_000_000, tracing.origin_of(span))
        )
        return result

    return {"bare": bare, "ids": ids, "outputs": outputs, "memory": memory, "event": event}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=3000, help="calls per variant")
    parser.add_argument("--latency-ms", type=float, default=1.0, help="fake LM latency")
    parser.add_argument("--warmup", type=int, default=10_500)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as spool_dir:
        plain, worker, _, mode, _ = steady_pair(Path(spool_dir), args.warmup, args.latency_ms)
        variants: list[tuple[str, Call]] = [
            ("plain", plain),
            *steps(worker).items(),
            ("worker", worker),
        ]
        cpu: dict[str, list[float]] = {name: [] for name, _ in variants}
        wall: dict[str, list[float]] = {name: [] for name, _ in variants}
        clock, thread_cpu = time.perf_counter, time.thread_time
        for i in range(args.rounds):
            k = i % len(variants)
            for name, call in variants[k:] + variants[:k]:
                c0, t0 = thread_cpu(), clock()
                call(text=f"ticket {i}")
                wall[name].append(clock() - t0)
                cpu[name].append(thread_cpu() - c0)
        worker.close(10)

    print(
        f"mode: {mode}; fake LM latency {args.latency_ms} ms; {args.rounds} calls per variant, "
        f"interleaved; {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f}"
    )
    base = statistics.median(cpu["plain"])
    previous = base
    for name, _ in variants:
        here = statistics.median(cpu[name])
        print(
            f"{name:8s} main-thread CPU median {here * 1e6:8.1f} us  "
            f"+{(here - base) * 1e6:6.1f} us vs plain  (step +{(here - previous) * 1e6:6.1f})"
        )
        previous = here
    ratio = statistics.fmean(wall["worker"]) / statistics.fmean(wall["plain"])
    added = (statistics.median(cpu["worker"]) - base) * 1e6
    print(f"worker_overhead_steps added_cpu_us={added:.1f} interleaved_ratio={ratio:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
