"""Benchmark: how long an optimization takes on the fake LM (~5 ms per call).

    python tests/bench/optimize_time.py [--optimizer BootstrapFewShot] [--examples 200]
                                        [--latency-ms 5]

Measured in one run, on the same examples and fake LM:
  baseline    evaluating the unoptimized program on every example (one LM call each)
  in-process  DSPyAgent.compile_with_optimizer on all examples
  child-job   what the optimizer service runs: the compile child process (spawn, import, compile
              on the train split, evaluate current and candidate on the holdout); its peak RSS
              is the child's own (VmHWM)
The last line is ``optimize_time optimizer=… examples=… wall_s=… peak_rss_mb=… lm_calls=…``
for the child job (the service's real cost).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import resource
import tempfile
import time
from pathlib import Path
from typing import Any

import repo_root  # noqa: F401  # first: the repository root, for tests.fixtures
from tests.fixtures import fake_task
from tests.fixtures.fake_lm import FakeEngine

from dspy_flywheel.lm import engine_stats, make_lm
from dspy_flywheel.optimizer.dataset import split
from dspy_flywheel.optimizer.runner import run_child
from dspy_flywheel.optimizer.spec import DataRow, JobSpec
from dspy_flywheel.sdk.agent import DSPyAgent


def _rss_mb(who: int) -> float:
    return resource.getrusage(who).ru_maxrss / 1024  # Linux: KiB


async def _child_job(optimizer: str, rows: list[DataRow], latency_s: float) -> dict[str, Any]:
    parts = split(rows, seed=13, train_fraction=0.6, val_fraction=0.2, min_examples=20)
    workdir = Path(tempfile.mkdtemp(prefix="bench-optimize-"))
    spec = JobSpec(
        job_id="bench",
        worker_id="bench",
        optimizer=optimizer,
        program_ref="tests.fixtures.fake_task:TicketRouter",
        lm_ref="tests.fixtures.fake_task:make_lm",
        result_path=str(workdir / "result.json"),
        train=parts.train,
        val=parts.val,
        holdout=parts.holdout,
    )

    async def ignore(_message: dict[str, Any]) -> None:
        return None

    started = time.perf_counter()
    outcome = await run_child(
        spec,
        workdir,
        wall_time_s=600,
        on_message=ignore,
        cancel=asyncio.Event(),
        env={"FLYWHEEL_FAKE_LATENCY_S": str(latency_s)},
    )
    wall = time.perf_counter() - started
    if not outcome.ok or outcome.result is None:
        raise SystemExit(f"child job failed: {outcome.kind}: {outcome.message}")
    return {
        "wall_s": wall,
        "lm_calls": outcome.result.lm_calls,
        "peak_rss_mb": outcome.result.peak_rss_mb,
        "sizes": parts.sizes(),
        "before": outcome.result.current_score,
        "after": outcome.result.candidate_score,
        "cpu_s": outcome.result.cpu_s,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--optimizer", default="BootstrapFewShot")
    parser.add_argument("--examples", type=int, default=200)
    parser.add_argument("--latency-ms", type=float, default=5.0)
    args = parser.parse_args()
    latency_s = args.latency_ms / 1000
    os.environ["FLYWHEEL_FAKE_LATENCY_S"] = str(latency_s)

    data = fake_task.tickets(args.examples, seed=11)
    engine = FakeEngine(fake_task.demo_aware_responder, latency_s=latency_s)
    lm = make_lm(engine, name="fake/demo-aware")
    agent = DSPyAgent(lm, home=tempfile.mkdtemp(prefix="bench-home-"))
    program = fake_task.TicketRouter()

    started, before = time.perf_counter(), engine_stats(lm)
    baseline = agent.evaluate(program, data)
    base_wall, base_calls = time.perf_counter() - started, (engine_stats(lm) - before).calls
    print(
        f"baseline evaluate examples={len(data)} wall_s={base_wall:.3f} lm_calls={base_calls} "
        f"accuracy={baseline.score:.3f} peak_rss_mb={_rss_mb(resource.RUSAGE_SELF):.0f}"
    )

    started, before = time.perf_counter(), engine_stats(lm)
    compiled = agent.compile_with_optimizer(program, data, agent.create_optimizer(args.optimizer))
    wall, calls = time.perf_counter() - started, (engine_stats(lm) - before).calls
    accuracy = agent.evaluate(compiled, data).score
    print(
        f"in-process optimizer={args.optimizer} examples={len(data)} wall_s={wall:.3f} "
        f"lm_calls={calls} accuracy_after={accuracy:.3f} "
        f"peak_rss_mb={_rss_mb(resource.RUSAGE_SELF):.0f} "
        f"ratio_to_baseline={wall / base_wall:.2f}"
    )

    rows = [DataRow(id=f"b{i}", inputs=t["inputs"], label=t["outputs"]) for i, t in enumerate(data)]
    job = asyncio.run(_child_job(args.optimizer, rows, latency_s))
    print(
        f"child-job split={job['sizes']} holdout_before={job['before']:.3f} "
        f"holdout_after={job['after']:.3f} child_cpu_s={job['cpu_s']:.2f} "
        f"ratio_to_baseline={job['wall_s'] / base_wall:.2f}"
    )
    print(
        f"optimize_time optimizer={args.optimizer} examples={len(data)} "
        f"wall_s={job['wall_s']:.3f} peak_rss_mb={job['peak_rss_mb']:.0f} "
        f"lm_calls={job['lm_calls']}"
    )


if __name__ == "__main__":
    main()
