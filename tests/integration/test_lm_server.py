"""The shared local LM server with the small model (SmolLM2-135M): started once by its first
users, shared by several processes without mixing up answers, counted per process.

Needs the weights: ``ops/model.sh fetch --small`` (CI fetches them). Each test module gets a
private server (its own state dir), so the machine's shared server is not touched.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

import dspy
import pytest

from dspy_flywheel.lm import LMSettings, ModelNotFoundError, build_lm, engine_stats
from dspy_flywheel.lm.launcher import running_server, server_config, stop_server
from dspy_flywheel.lm.served import ServedEngine

pytestmark = pytest.mark.realllm

CLIENT = Path(__file__).with_name("lm_server_client.py")


@pytest.fixture(scope="module")
def settings(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LMSettings]:
    settings = LMSettings(
        model="smollm2",
        threads=2,
        ctx=2048,
        max_tokens=48,
        slots=4,
        server_idle_s=0,
        server_dir=tmp_path_factory.mktemp("lmserver"),
    )
    try:
        settings.model_path()
    except ModelNotFoundError as exc:
        pytest.skip(f"small model not installed ({exc})")
    yield settings
    stop_server(server_config(settings))


def _run_clients(settings: LMSettings, roles: list[str], calls: int) -> list[dict[str, Any]]:
    env_settings = {
        "FLYWHEEL_LM_MODEL": settings.model,
        "FLYWHEEL_LM_CTX": str(settings.ctx),
        "FLYWHEEL_LM_THREADS": str(settings.threads),
        "FLYWHEEL_LM_MAX_TOKENS": str(settings.max_tokens),
        "FLYWHEEL_LM_SLOTS": str(settings.slots),
        "FLYWHEEL_LM_SERVER_IDLE_S": "0",
        "FLYWHEEL_LM_SERVER_DIR": str(settings.server_dir),
    }
    import os

    env = {**os.environ, **env_settings}
    children = [
        subprocess.Popen(
            [sys.executable, str(CLIENT), role, str(calls)],
            env=env,
            stdout=subprocess.PIPE,
            text=True,
        )
        for role in roles
    ]
    reports = []
    for child in children:
        out, _ = child.communicate(timeout=400)
        assert child.returncode == 0, f"client exited {child.returncode}"
        reports.append(json.loads(out.strip().splitlines()[-1]))
    return reports


def test_two_workers_and_a_job_share_one_server_without_mixing_answers(
    settings: LMSettings,
) -> None:
    assert running_server(server_config(settings)) is None  # the first users start it
    roles = ["worker-a", "worker-b", "job"]
    reports = _run_clients(settings, roles, calls=4)

    assert len({r["server_pid"] for r in reports}) == 1  # one model on the machine
    assert len({r["address"] for r in reports}) == 1
    assert reports[0]["address"].startswith("http://127.0.0.1:")  # loopback only
    codes = [reply["code"] for report in reports for reply in report["replies"]]
    assert len(set(codes)) == len(codes) == 12  # distinct prompts
    for role, report in zip(roles, reports, strict=True):
        assert report["role"] == role
        for reply in report["replies"]:
            assert reply["code"].startswith(role)
            assert reply["answer"] == {"code": reply["code"]}  # its own request's answer
            assert reply["prompt_tokens"] > 0
        # counted per process: its own calls and tokens, not the others'
        assert report["stats"]["calls"] == 4
        assert report["stats"]["errors"] == 0
        assert report["stats"]["prompt_tokens"] == sum(
            r["prompt_tokens"] for r in report["replies"]
        )


class Route(dspy.Signature):
    """Route the customer support ticket to a team."""

    ticket: str = dspy.InputField()
    label: Literal["billing", "technical", "account", "shipping"] = dspy.OutputField()


def test_dspy_program_through_the_server_is_counted(settings: LMSettings) -> None:
    lm = build_lm(settings)
    assert isinstance(lm.engine, ServedEngine)
    before = engine_stats(lm)
    with dspy.context(lm=lm, adapter=dspy.JSONAdapter()):
        prediction = dspy.Predict(Route)(ticket="I was charged twice for my order.")
    assert prediction.label in ("billing", "technical", "account", "shipping")
    spent = engine_stats(lm) - before
    assert (spent.calls, spent.errors) == (1, 0)
    assert spent.prompt_tokens > 50


def test_a_server_that_went_away_is_started_again(settings: LMSettings) -> None:
    lm = build_lm(settings)
    first = lm.engine.info.pid
    assert stop_server(server_config(settings))
    with dspy.context(lm=lm, adapter=dspy.JSONAdapter()):
        prediction = dspy.Predict(Route)(ticket="The app crashes on start.")
    assert prediction.label in ("billing", "technical", "account", "shipping")
    assert lm.engine.info.pid != first
    assert running_server(server_config(settings)) == lm.engine.info


def test_an_idle_server_exits_by_itself(tmp_path: Path, settings: LMSettings) -> None:
    idle = settings.model_copy(update={"server_dir": tmp_path, "server_idle_s": 1.0})
    config = server_config(idle)
    from dspy_flywheel.lm.launcher import ensure_server

    info = ensure_server(config)
    deadline = time.monotonic() + 60
    while running_server(config) is not None and time.monotonic() < deadline:
        time.sleep(0.5)
    assert running_server(config) is None
    assert not config.state_path.exists()
    assert info.pid > 0
