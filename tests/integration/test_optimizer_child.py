"""The compile child on its own (no broker, no database): reports, limits, errors, lifeline."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from dspy_flywheel.optimizer.runner import ChildOutcome, run_child
from dspy_flywheel.optimizer.spec import EXIT_ORPHANED, DataRow, JobSpec
from tests.fixtures import fake_task

pytestmark = pytest.mark.timeout(120)
PROGRAM = "tests.fixtures.fake_task:TicketRouter"
LM = "tests.fixtures.fake_task:make_lm"


def spec(tmp_path: Path, **overrides: Any) -> JobSpec:
    data = [
        DataRow(id=str(i), inputs=t["inputs"], label=t["outputs"])
        for i, t in enumerate(fake_task.tickets(60, seed=5))
    ]
    values: dict[str, Any] = {
        "job_id": "j",
        "worker_id": "w",
        "optimizer": "BootstrapFewShot",
        "program_ref": PROGRAM,
        "lm_ref": LM,
        "result_path": str(tmp_path / "result.json"),
        "train": data[:36],
        "val": data[36:48],
        "holdout": data[48:],
        "report_interval_s": 0.1,
    }
    values.update(overrides)
    return JobSpec(**values)


async def run(job: JobSpec, tmp_path: Path, **kwargs: Any) -> ChildOutcome:
    async def ignore(_message: dict[str, Any]) -> None:
        return None

    return await run_child(
        job,
        tmp_path,
        wall_time_s=kwargs.pop("wall_time_s", 60),
        on_message=ignore,
        cancel=asyncio.Event(),
        **kwargs,
    )


async def test_successful_child_reports_phases_and_result(tmp_path: Path) -> None:
    outcome = await run(spec(tmp_path), tmp_path)
    assert outcome.ok
    assert outcome.result is not None
    assert outcome.result.current_score == 0.0
    assert outcome.result.candidate_score == 1.0
    assert outcome.result.current_source == "code"
    # bootstrap calls + two holdout evaluations of 12 examples each
    assert outcome.result.lm_calls >= 24
    assert outcome.result.tokens > 0
    phases = [(m["phase"], m["event"]) for m in outcome.messages if m["type"] == "phase"]
    assert phases == [
        ("compile", "start"),
        ("compile", "end"),
        ("evaluate", "start"),
        ("evaluate", "end"),
    ]
    assert outcome.last("result") is not None


async def test_current_version_is_the_baseline(tmp_path: Path) -> None:
    first = await run(spec(tmp_path), tmp_path)
    assert first.result is not None
    second = await run(
        spec(
            tmp_path,
            current_state=first.result.state,
            current_version=4,
            current_signature=first.result.signature,
        ),
        tmp_path,
    )
    assert second.result is not None
    assert second.result.current_source == "version 4"
    assert second.result.current_score == 1.0


def served(rows: list[DataRow], version: str | None, *, has_label: bool = True) -> list[DataRow]:
    """The rows as if ``version`` had served them live and answered each correctly (without
    ``has_label``: no feedback came, so the store's label is that answer)."""
    return [DataRow(r.id, r.inputs, r.label, r.label, version, has_label) for r in rows]


@pytest.mark.parametrize(
    ("served_by", "reuse", "has_label", "reused"),
    [
        (None, True, True, True),
        ("7", True, True, False),
        (None, False, True, False),
        (None, True, False, False),
    ],
)
async def test_current_program_is_scored_from_its_served_answers(
    tmp_path: Path, served_by: str | None, reuse: bool, has_label: bool, reused: bool
) -> None:
    """The code's program answers every holdout ticket wrongly when asked (score 0); the stored
    answers it served are right. They count only when that program served them and a label
    came (an unlabeled row's expected outputs are its served answer: reuse would always score)."""
    plain = await run(spec(tmp_path), tmp_path)
    rows = served(spec(tmp_path).holdout, served_by, has_label=has_label)
    job = spec(tmp_path, reuse_served=reuse, holdout=rows)
    outcome = await run(job, tmp_path)
    assert plain.result is not None
    assert outcome.result is not None
    holdout = len(job.holdout)
    assert outcome.result.current_served == (holdout if reused else 0)
    assert outcome.result.current_score == (1.0 if reused else 0.0)
    assert outcome.result.candidate_score == 1.0
    saved = plain.result.lm_calls - outcome.result.lm_calls
    assert saved == (holdout if reused else 0)


async def test_a_version_is_scored_from_what_it_served(tmp_path: Path) -> None:
    first = await run(spec(tmp_path), tmp_path)
    assert first.result is not None
    job = spec(tmp_path)
    holdout = [DataRow(r.id, r.inputs, {"label": "nobody"}, r.label, "4") for r in job.holdout]
    second = await run(
        spec(
            tmp_path,
            holdout=holdout,
            current_state=first.result.state,
            current_version=4,
            current_signature=first.result.signature,
        ),
        tmp_path,
    )
    assert second.result is not None
    assert second.result.current_served == len(holdout)
    assert second.result.current_score == 0.0  # the served answers were wrong
    assert second.result.candidate_score == 1.0


@pytest.mark.parametrize(
    ("overrides", "kind", "fragment"),
    [
        ({"optimizer": "Nope"}, "config", "unknown optimizer 'Nope'"),
        (
            {"program_ref": "no.such.module:Thing"},
            "config",
            "cannot import module 'no.such.module'",
        ),
        ({"params": {"max_demos": 2}}, "config", "does not accept max_demos"),
        ({"max_tokens": 500}, "budget", "token budget exhausted"),
        ({"max_lm_calls": 5}, "budget", "LM call budget exhausted: 5 calls (limit 5)"),
    ],
)
async def test_child_failures_are_classified(
    tmp_path: Path, overrides: dict[str, Any], kind: str, fragment: str
) -> None:
    outcome = await run(spec(tmp_path, **overrides), tmp_path)
    assert outcome.kind == kind
    assert fragment in outcome.message


def test_child_exits_when_its_parent_goes_away(tmp_path: Path) -> None:
    job = spec(tmp_path, optimizer="BootstrapFewShotWithRandomSearch")
    job.write(tmp_path / "spec.json")
    env = {"FLYWHEEL_FAKE_LATENCY_S": "0.05"}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "dspy_flywheel.optimizer.job",
            "--spec",
            str(tmp_path / "spec.json"),
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        env={**os.environ, **env},
    )
    assert proc.stdout is not None
    assert proc.stdin is not None
    first = proc.stdout.readline()  # the child is up and compiling
    assert b'"phase"' in first or b'"progress"' in first
    proc.stdin.close()  # what the OS does when the parent dies
    assert proc.wait(15) == EXIT_ORPHANED
