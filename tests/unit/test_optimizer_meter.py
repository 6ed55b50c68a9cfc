"""Compile-child bookkeeping without processes: failure classification, meter progress."""

from __future__ import annotations

import io
import json
import logging
from pathlib import Path
from typing import Any

from dspy_flywheel.lm import make_lm
from dspy_flywheel.optimizer.meter import Meter, Reporter, TrialLogHandler
from dspy_flywheel.optimizer.runner import _classify
from dspy_flywheel.optimizer.spec import EXIT_BUDGET, EXIT_MEMORY, EXIT_ORPHANED, JobSpec
from tests.fixtures.fake_lm import FakeEngine


def spec(tmp_path: Path) -> JobSpec:
    return JobSpec(
        job_id="j",
        worker_id="w",
        optimizer="BootstrapFewShot",
        program_ref="m:p",
        result_path=str(tmp_path / "r.json"),
        memory_mb=512,
    )


def test_failures_are_classified(tmp_path: Path) -> None:
    s = spec(tmp_path)
    reported = [{"type": "error", "kind": "config", "message": "unknown optimizer"}]
    assert _classify(1, reported, "", s) == ("config", "unknown optimizer")
    assert _classify(EXIT_BUDGET, [], "", s) == ("budget", "LM budget exhausted")
    assert _classify(EXIT_MEMORY, [], "", s) == ("memory", "memory limit of 512 MB exceeded")
    assert _classify(1, [], "Traceback...\nMemoryError", s)[0] == "memory"
    assert _classify(EXIT_ORPHANED, [], "", s)[0] == "crashed"
    assert _classify(-9, [], "", s) == ("crashed", "compile child killed by signal SIGKILL")
    assert _classify(2, [], "boom\nValueError: bad", s) == (
        "crashed",
        "compile child exited with code 2: ValueError: bad",
    )


def test_meter_counts_at_the_engine_and_reports_trials() -> None:
    engine = FakeEngine(lambda _messages: {"label": "x"})
    lm = make_lm(engine)
    out = io.StringIO()
    meter = Meter(lm, Reporter(out), max_lm_calls=None, max_tokens=None, expected_calls=10)
    for _ in range(3):
        lm("hello")
    usage = meter.usage()
    assert usage["lm_calls"] == 3
    assert usage["tokens"] > 0
    assert meter.compile_fraction() == 0.3

    class Result:
        score = 75.0

    meter.on_evaluate_end("c1", Result())
    meter.on_evaluate_end("c2", None, exception=RuntimeError("x"))  # failed evals don't count
    assert [t["score"] for t in meter.trials] == [0.75]
    lines: list[dict[str, Any]] = [json.loads(line) for line in out.getvalue().splitlines()]
    assert lines[-1]["type"] == "trial"
    assert lines[-1]["n"] == 1

    meter.trial_total = 4
    assert meter.compile_fraction() == 0.25
    progress = meter.progress()
    assert progress["trials"] == 1
    assert progress["best_trial_score"] == 0.75


def test_mipro_trial_lines_drive_progress() -> None:
    meter = Meter(
        make_lm(FakeEngine()),
        Reporter(io.StringIO()),
        max_lm_calls=None,
        max_tokens=None,
        expected_calls=1,
    )
    handler = TrialLogHandler(meter)
    record = logging.LogRecord(
        "dspy.teleprompt", logging.INFO, __file__, 1, "===== Trial %d / %d =====", (6, 10), None
    )
    handler.emit(record)
    assert (meter.trial_current, meter.trial_total) == (6, 10)
    assert meter.compile_fraction() == 0.5
