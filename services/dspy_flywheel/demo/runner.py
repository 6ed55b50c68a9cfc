"""The demo's main flow: stack → services → traffic → trigger → optimize → hot reload → summary."""

from __future__ import annotations

import asyncio
import base64
import os
import secrets
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import dspy
from rich.console import Console

from dspy_flywheel.bus.admin import ensure_topics
from dspy_flywheel.demo.display import Display
from dspy_flywheel.demo.services import ServiceGroup
from dspy_flywheel.demo.stack import ensure_model, ensure_stack
from dspy_flywheel.demo.traffic import Tally, is_correct, ticket_stream
from dspy_flywheel.demo.watch import Lifecycle, follow
from dspy_flywheel.settings import FlywheelSettings
from dspy_flywheel.store.migrate import apply_migrations
from dspy_flywheel.store.pool import connect

FINAL = ("succeeded", "rejected", "failed", "cancelled")


@dataclass
class DemoOptions:
    model: str = "qwen1.5b"
    max_before: int = 60
    after_calls: int = 30
    timeout_s: float = 14 * 60
    seed: int = 7
    state_dir: Path = field(default_factory=lambda: Path(
        os.environ.get("FLYWHEEL_STATE")
        or Path(os.environ.get("FLYWHEEL_HOME", Path.home() / ".cache/dspy-flywheel")) / "run"))


@dataclass
class Summary:
    phases: dict[str, float] = field(default_factory=dict)
    usage: dict[str, dict[str, int]] = field(default_factory=dict)


def _demo_env(opts: DemoOptions, run_id: str, endpoints: dict[str, str]) -> dict[str, str]:
    key = base64.b64encode(secrets.token_bytes(32)).decode()
    return {
        **endpoints,
        "FLYWHEEL_TOPIC_PREFIX": f"demo-{run_id}-",
        "FLYWHEEL_DB_SCHEMA": f"demo_{run_id}",
        "FLYWHEEL_ENCRYPTION_KEYS": f"demo:{key}",
        "FLYWHEEL_ENCRYPTION_ACTIVE_KEY": "demo",
        "FLYWHEEL_LM_MODEL": os.environ.get("FLYWHEEL_LM_MODEL", opts.model),
        # a team name is a few tokens; the cap bounds a confused answer's cost on 2 CPU cores
        "FLYWHEEL_LM_MAX_TOKENS": os.environ.get("FLYWHEEL_LM_MAX_TOKENS", "64"),
        "FLYWHEEL_OPTIMIZER_MIN_EXAMPLES": "16",
        "FLYWHEEL_OPTIMIZER_TRAIN_FRACTION": "0.5",
        "FLYWHEEL_OPTIMIZER_VAL_FRACTION": "0.1",
        "FLYWHEEL_TRIGGER_START_FROM": "earliest",
    }


async def _prepare(settings: FlywheelSettings) -> None:
    conn = await connect(settings.postgres)
    try:
        await apply_migrations(conn, settings.db_schema)
    finally:
        await conn.close()
    await ensure_topics(settings.kafka, settings.topics)


def _usage(lm: dspy.LM) -> dict[str, int]:
    from dspy_flywheel.lm import engine_stats

    stats = engine_stats(lm)
    return {"calls": stats.calls, "prompt_tokens": stats.prompt_tokens,
            "completion_tokens": stats.completion_tokens}


def _minus(a: dict[str, int], b: dict[str, int]) -> dict[str, int]:
    return {k: a[k] - b.get(k, 0) for k in a}


async def run_demo(opts: DemoOptions, console: Console | None = None) -> int:
    console = console or Console()
    started = time.monotonic()
    summary = Summary()
    console.rule("dspy-flywheel demo")
    console.log("starting the stack (Kafka 4.x KRaft + PostgreSQL) ...")
    endpoints = await asyncio.to_thread(ensure_stack)
    console.log(f"stack: kafka={endpoints['KAFKA_BOOTSTRAP_SERVERS']}")
    console.log(f"fetching/verifying the embedded model ({opts.model}) ...")
    await asyncio.to_thread(ensure_model, opts.model)
    run_id = time.strftime("%Y%m%d%H%M%S")
    env = _demo_env(opts, run_id, endpoints)
    os.environ.update(env)
    settings = FlywheelSettings()
    await _prepare(settings)
    summary.phases["setup"] = time.monotonic() - started

    services = ServiceGroup(env, opts.state_dir / "demo" / run_id)
    services.start()
    console.log(f"services started (collector, trigger, optimizer); logs in {services.log_dir}")
    try:
        return await _loop(opts, settings, services, console, summary, started)
    finally:
        services.stop()


async def _loop(opts: DemoOptions, settings: FlywheelSettings, services: ServiceGroup,
                console: Console, summary: Summary, started: float) -> int:
    from dspy_flywheel.demo.worker import TicketRouter
    from dspy_flywheel.lm import build_lm

    lm = build_lm()
    dspy.configure(lm=lm)
    worker = TicketRouter()
    lifecycle = Lifecycle(worker.worker_id)
    stop = asyncio.Event()
    watcher = asyncio.create_task(follow(settings.kafka, settings.topics, lifecycle, stop))
    tally = Tally()
    stream = iter(ticket_stream(opts.seed))
    deadline = started + opts.timeout_s

    async def serve_one(display: Display) -> None:
        example = next(stream)
        version = worker.version
        pred = await asyncio.to_thread(worker, ticket=example.ticket)
        worker.feedback(pred.execution_id, label=example.label)
        tally.add(version, is_correct(example, pred))
        display.update(tally, lifecycle, worker.version)

    def check_alive() -> None:
        if dead := services.dead():
            raise RuntimeError(f"service(s) exited: {dead}; see {services.log_dir}")

    try:
        with Display(console) as display:
            display.phase = "serving traffic with labels; waiting for the trigger"
            t = time.monotonic()
            usage0 = _usage(lm)
            while lifecycle.request is None and tally.calls() < opts.max_before:
                check_alive()
                await serve_one(display)
            await _wait(lambda: lifecycle.request is not None, 15, display, tally, lifecycle, worker)
            summary.phases["traffic until trigger"] = time.monotonic() - t
            summary.usage["worker before"] = _minus(_usage(lm), usage0)
            if lifecycle.request is None:
                display.note("the trigger did not fire (accuracy stayed above the threshold?)")
                return 1
            display.note(f"trigger fired: {lifecycle.request['reason']} "
                         f"evidence={lifecycle.request['evidence_json']}")
            display.phase = "optimizing (traffic paused: the optimizer needs the 2 CPU cores)"
            t = time.monotonic()
            await _wait(lambda: lifecycle.status in FINAL or time.monotonic() > deadline,
                        opts.timeout_s, display, tally, lifecycle, worker, check_alive)
            summary.phases["optimization job"] = time.monotonic() - t
            display.note(f"job {lifecycle.job_id} ended: {lifecycle.status} {lifecycle.message or ''}")
            if lifecycle.status != "succeeded":
                return 1
            t = time.monotonic()
            await _wait(lambda: worker.version is not None, 30, display, tally, lifecycle, worker)
            summary.phases["publish → worker serving"] = time.monotonic() - t
            display.note(f"worker hot-reloaded: now serving v{worker.version}")
            display.phase = "serving new traffic on the optimized program"
            t = time.monotonic()
            usage1 = _usage(lm)
            for _ in range(opts.after_calls):
                check_alive()
                await serve_one(display)
            summary.phases["traffic after reload"] = time.monotonic() - t
            summary.usage["worker after"] = _minus(_usage(lm), usage1)
    finally:
        stop.set()
        await watcher
        worker.close(timeout=10)
    summary.phases["total"] = time.monotonic() - started
    from dspy_flywheel.demo.report import print_summary

    return print_summary(console, tally, lifecycle, summary)


async def _wait(done: Any, timeout: float, display: Display, tally: Tally,
                lifecycle: Lifecycle, worker: Any, check: Any = None) -> None:
    end = time.monotonic() + timeout
    while not done() and time.monotonic() < end:
        if check:
            check()
        display.update(tally, lifecycle, worker.version)
        await asyncio.sleep(0.5)
