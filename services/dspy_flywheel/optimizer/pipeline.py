"""One job, start to end: snapshot → compile child → holdout gate → publish or reject.

Every status change is committed with its status event (outbox). The job's span continues the
request's trace; snapshot and publish are spans of this process, and compile, each trial and
the holdout evaluation are spans rebuilt from the child's timed reports.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
from opentelemetry import trace

from dspy_flywheel.compile import confusion, gate
from dspy_flywheel.compile.catalog import canonical_name
from dspy_flywheel.compile.errors import CompileError
from dspy_flywheel.contracts.events import ProgramUpdated, now_ms
from dspy_flywheel.contracts.refs import RefNotAllowed, check_job_refs
from dspy_flywheel.contracts.topics import Topics
from dspy_flywheel.metrics import optimizer as optimizer_metrics
from dspy_flywheel.optimizer.dataset import DatasetSource, split
from dspy_flywheel.optimizer.errors import OptimizerError
from dspy_flywheel.optimizer.reaper import RESTARTED
from dspy_flywheel.optimizer.runner import run_child
from dspy_flywheel.optimizer.settings import OptimizerSettings
from dspy_flywheel.optimizer.spans import child_spans
from dspy_flywheel.optimizer.spec import CompileResult, JobSpec
from dspy_flywheel.store import jobs, outbox, programs
from dspy_flywheel.telemetry import context_from_traceparent, current_traceparent, tracer
from dspy_flywheel.trigger.config_topic import registered_refs

log = logging.getLogger(__name__)
_SNAPSHOT_DONE = 0.05
_PROGRESS_KEYS = (
    "phase", "trials", "trial_total", "best_trial_score", "lm_calls", "tokens", "train_step",
    "train_steps", "train_loss",
)  # fmt: skip


# the settings a compile child gets as they are
_SPEC_SETTINGS = (
    "lm_ref",
    "max_lm_calls",
    "max_tokens",
    "memory_mb",
    "num_threads",
    "report_interval_s",
    "reuse_served",
)


@dataclass
class JobServices:
    settings: OptimizerSettings
    pool: asyncpg.Pool
    dataset: DatasetSource
    topics: Topics
    wake_relay: Any = None  # callable: a committed event is waiting


class JobRun:
    def __init__(self, services: JobServices, job: jobs.Job) -> None:
        self.s = services
        self.job = job
        self.cancel = asyncio.Event()
        self.lost_ownership = False
        self.finishing = False  # set before the final transaction; heartbeats stop caring
        self.optimizer = job.optimizer  # canonical catalog name once validated
        self._last_emit = 0.0
        self._last_phase = ""
        self._usage: dict[str, int] = {}
        self._status = job.status
        self._started = time.monotonic()

    # -- status plumbing -------------------------------------------------------------------

    async def _event(self, db: jobs.Executor, status: str, **fields: Any) -> None:
        """The job's status event (``outbox.add_status``'s ``progress``, ``message``,
        ``details``), in ``db``'s transaction."""
        await outbox.add_status(
            db,
            self.s.topics.optimization_status,
            self.job.job_id,
            self.job.worker_id,
            status,
            traceparent=current_traceparent(),
            **fields,
        )
        if status != self._status:
            self._status = status
            details = fields.get("details")
            optimizer_metrics.job_state(status, self.optimizer, self._started, details)

    def _wake(self) -> None:
        if self.s.wake_relay is not None:
            self.s.wake_relay()

    async def _finish(
        self, status: str, message: str, *, details: dict[str, Any] | None = None, **values: Any
    ) -> jobs.Job | None:
        self.finishing = True
        async with self.s.pool.acquire() as conn, conn.transaction():
            done = await self._close(conn, status, message, details, **values)
        self._wake()
        trace.get_current_span().set_attribute("flywheel.job.status", status)
        log.info("job %s (%s): %s: %s", self.job.job_id, self.job.worker_id, status, message)
        return done

    async def _close(
        self,
        conn: jobs.Executor,
        status: str,
        message: str,
        details: dict[str, Any] | None,
        **values: Any,
    ) -> jobs.Job | None:
        """Finish the job if it is still running, with its final status event (in ``conn``'s
        transaction); None when it was finished elsewhere."""
        job_id = self.job.job_id
        done = await jobs.finish(
            conn, job_id, status, message, details=details, only_from=("running",), **values
        )
        if done is not None:
            details = {**(details or {}), **values}
            await self._event(
                conn, status, progress=done.progress, message=message, details=details
            )
        return done

    async def _progress(self, progress: float, details: dict[str, Any], message: str) -> None:
        async with self.s.pool.acquire() as conn, conn.transaction():
            await jobs.set_progress(conn, self.job.job_id, progress, details, message)
            await self._event(conn, "running", progress=progress, message=message, details=details)
        self._wake()

    async def on_child_message(self, message: dict[str, Any]) -> None:
        kind = message.get("type")
        if kind not in ("progress", "phase"):
            return
        phase = str(message.get("phase", ""))
        if kind == "progress":
            self._usage = {k: int(message.get(k) or 0) for k in ("lm_calls", "tokens")}
        fraction = (
            float(message.get("fraction", 0.0))
            if kind == "progress"
            else (0.0 if message.get("event") == "start" else 1.0)
        )
        child = 0.8 * fraction if phase == "compile" else 0.8 + 0.2 * fraction
        now = time.monotonic()
        interval = self.s.settings.progress_interval_s
        if phase == self._last_phase and now - self._last_emit < interval:
            return
        self._last_phase, self._last_emit = phase, now
        details: dict[str, Any] = {k: message[k] for k in _PROGRESS_KEYS if k in message}
        progress = round(_SNAPSHOT_DONE + (0.95 - _SNAPSHOT_DONE) * child, 4)
        await self._progress(progress, details, f"{phase}: {int(progress * 100)}%")

    async def _heartbeat(self) -> None:
        while True:
            await asyncio.sleep(self.s.settings.heartbeat_s)
            try:
                state = await jobs.heartbeat(
                    self.s.pool, self.job.job_id, self.s.settings.instance_id
                )
            except (OSError, asyncpg.PostgresError) as exc:
                log.warning("job %s: heartbeat failed, will retry: %s", self.job.job_id, exc)
                continue
            if self.finishing:
                return
            if state is None:
                self.lost_ownership = True
                log.warning("job %s is no longer ours; stopping its child", self.job.job_id)
            if state is None or state:
                self.cancel.set()
                return

    # -- the job ------------------------------------------------------------------------------

    async def execute(self) -> jobs.Job | None:
        ctx = context_from_traceparent(self.job.traceparent)
        named = ("job_id", "worker_id", "optimizer", "reason")
        attrs = {f"flywheel.{k}": getattr(self.job, k) for k in named}
        with tracer.start_as_current_span("optimization.job", context=ctx, attributes=attrs):
            beat = asyncio.create_task(self._heartbeat())
            try:
                return await self._execute()
            except asyncio.CancelledError:
                message = f"{RESTARTED}: it was shut down while running"
                with contextlib.suppress(Exception):
                    await asyncio.shield(self._finish("failed", message))
                raise
            except CompileError as exc:
                return await self._finish("failed", str(exc))
            except Exception as exc:
                log.exception("job %s failed", self.job.job_id)
                return await self._finish("failed", f"internal error: {type(exc).__name__}: {exc}")
            finally:
                beat.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await beat

    async def _load_rows(self) -> list[Any]:
        """The worker's examples; waits up to ``dataset_wait_s`` for enough of them for the
        gate's holdout (the trigger counts labels on Kafka, the collector stores them a moment
        later, and labeled traffic goes on while the job waits)."""
        job, settings = self.job, self.s.settings
        wanted = settings.examples_wanted()
        deadline = time.monotonic() + settings.dataset_wait_s
        while True:
            rows = await self.s.dataset.load(
                job.worker_id, limit=settings.max_examples, labeled_only=settings.labeled_only
            )
            if len(rows) >= wanted or time.monotonic() >= deadline:
                return rows
            await self._progress(
                0.0,
                {"examples": len(rows), "wanted": wanted},
                f"waiting for training data: {len(rows)}/{wanted}",
            )
            await asyncio.sleep(settings.poll_interval_s)

    async def _execute(self) -> jobs.Job | None:
        job, settings = self.job, self.s.settings
        async with self.s.pool.acquire() as conn, conn.transaction():
            await self._event(
                conn,
                "running",
                progress=0.0,
                message="started",
                details={"owner": settings.instance_id},
            )
        self._wake()
        if job.cancel_requested:
            return await self._finish("cancelled", "cancelled before it started")
        optimizer = self.optimizer = canonical_name(job.optimizer)
        if job.program_ref is not None or job.metric_ref is not None:
            # the request may come from anyone who can write the topic: check before importing
            registered = await registered_refs(
                settings.kafka, self.s.topics.trigger_config, job.worker_id
            )
            try:
                check_job_refs(
                    job.worker_id,
                    job.program_ref,
                    job.metric_ref,
                    registered,
                    settings.ref_allow_list,
                )
            except RefNotAllowed as exc:
                return await self._finish("failed", f"refused: {exc}")
        program_ref = job.program_ref or settings.default_program_ref
        if not program_ref:
            return await self._finish(
                "failed",
                "refused: the request names no program_ref (module:attr of the "
                "worker's program) and FLYWHEEL_OPTIMIZER_DEFAULT_PROGRAM_REF is not set",
            )
        with tracer.start_as_current_span("optimization.snapshot") as span:
            rows = await self._load_rows()
            try:
                parts = split(
                    rows,
                    seed=settings.split_seed,
                    min_examples=settings.min_examples,
                    train_fraction=settings.train_fraction,
                    val_fraction=settings.val_fraction,
                )
            except OptimizerError as exc:
                return await self._finish(
                    "failed", f"refused: {exc}", details={"examples": len(rows)}
                )
            ids = [r.id for r in parts.train + parts.val + parts.holdout]
            snapshot_id = await self.s.dataset.snapshot(
                job.worker_id, ids, f"optimization {job.job_id}"
            )
            span.set_attributes(
                {
                    "flywheel.examples": len(ids),
                    **{f"flywheel.split.{k}": v for k, v in parts.sizes().items()},
                }
            )
        split_details = {"split": parts.sizes(), "seed": settings.split_seed}
        refused = gate.too_small(len(parts.holdout), settings.gate())
        if refused is not None:
            needed = settings.examples_for_holdout(settings.min_holdout)
            return await self._finish(
                "rejected",
                f"{refused.reason} (about {needed} labeled examples at the current split; "
                f"{len(rows)} now)",
                details={**split_details, "examples": len(rows), "gate": refused.record()},
            )
        await jobs.record(self.s.pool, job.job_id, snapshot_id=snapshot_id)
        await self._progress(_SNAPSHOT_DONE, split_details, "dataset snapshot taken")
        current = await programs.latest(self.s.pool, job.worker_id)
        workdir = Path(tempfile.mkdtemp(prefix=f"job-{job.job_id}-", dir=settings.workdir))
        spec = JobSpec(
            **{k: getattr(job, k) for k in ("job_id", "worker_id", "params", "metric_ref")},
            **{k: getattr(settings, k) for k in _SPEC_SETTINGS},
            optimizer=optimizer,
            program_ref=program_ref,
            result_path=str(workdir / "result.json"),
            current_state=current.state if current else None,
            current_version=current.version if current else None,
            current_signature=current.signature if current else None,
            train=parts.train,
            val=parts.val,
            holdout=parts.holdout,
        )
        outcome = await run_child(
            spec,
            workdir,
            wall_time_s=settings.wall_time_s,
            on_message=self.on_child_message,
            cancel=self.cancel,
            env=settings.child_env,
        )
        shutil.rmtree(workdir, ignore_errors=True)
        child_spans(outcome)
        costs = {"wall_s": round(outcome.wall_s, 3), "snapshot_id": snapshot_id}
        if not outcome.ok or outcome.result is None:
            if self.lost_ownership:
                return None
            status = "cancelled" if outcome.kind == "cancelled" else "failed"
            message = (
                outcome.message if status == "cancelled" else (f"{outcome.kind}: {outcome.message}")
            )
            usage = {k: v for k, v in self._usage.items() if v}
            return await self._finish(
                status, message, details={"failure": outcome.kind}, **costs, **usage
            )
        return await self._decide(outcome.result, costs)

    async def _decide(self, result: CompileResult, costs: dict[str, Any]) -> jobs.Job | None:
        with tracer.start_as_current_span("optimization.gate") as span:
            decision = gate.decide_holdout(
                result.current_scores, result.candidate_scores, self.s.settings.gate()
            )
            outcome = "publish" if decision.publish else "reject"
            span.set_attribute("flywheel.gate.decision", outcome)
            span.set_attribute("flywheel.gate.reason", decision.reason)
        optimizer_metrics.gate_decided(decision.publish)
        scores = {
            "holdout_before": result.current_score,
            "holdout_after": result.candidate_score,
            "lm_calls": result.lm_calls,
            "tokens": result.tokens,
            "cpu_s": round(result.cpu_s, 3),
            **costs,
        }
        details = {
            "current_source": result.current_source,
            "current_served": result.current_served,
            "holdout_size": result.holdout_size,
            "trials": len(result.trials),
            "lm_errors": result.lm_errors,
            "eval_errors": {"current": result.current_errors, "candidate": result.candidate_errors},
            "dropped_examples": result.dropped_examples,
            "peak_rss_mb": result.peak_rss_mb,
            "margin": self.s.settings.min_improvement,
            "gate": decision.record(),
            **confusion.job_report(result.current_confusion, result.candidate_confusion),
        }
        if not decision.publish:
            return await self._finish("rejected", decision.reason, details=details, **scores)
        state_json = json.dumps(result.state)
        size = len(state_json.encode())
        if size > self.s.settings.max_program_bytes:
            return await self._finish(
                "failed",
                f"program state is {size} bytes, over the "
                f"{self.s.settings.max_program_bytes} byte ceiling (a version is one bus "
                "message: FLYWHEEL_OPTIMIZER_MAX_PROGRAM_BYTES with the broker's limit)",
                details=details,
                **scores,
            )
        self.finishing = True
        with tracer.start_as_current_span("optimization.publish") as span:
            job = self.job
            async with self.s.pool.acquire() as conn, conn.transaction():
                version = await programs.add_version(
                    conn,
                    programs.NewProgram(
                        **scores,  # holdout before/after, costs and the snapshot id
                        worker_id=job.worker_id,
                        state=result.state,
                        signature=result.signature,
                        optimizer=self.optimizer,
                        size_bytes=size,
                        params=job.params,
                        job_id=job.job_id,
                        requested_by=job.requested_by,
                        reason=job.reason,
                        gate=decision.record(),
                        adapter=result.adapter,
                    ),
                )
                span.set_attribute("flywheel.program.version", version.version)
                await outbox.add(
                    conn,
                    self.s.topics.program_updated,
                    job.worker_id,
                    ProgramUpdated(
                        worker_id=job.worker_id,
                        version=version.version,
                        program_state_json=state_json,
                        signature_json=json.dumps(result.signature),
                        optimizer=self.optimizer,
                        job_id=job.job_id,
                        holdout_before=result.current_score,
                        holdout_after=result.candidate_score,
                        timestamp_ms=now_ms(),
                        rollout="candidate" if self.s.settings.rollout == "canary" else "serve",
                        adapter_json=json.dumps(result.adapter) if result.adapter else None,
                    ),
                    traceparent=current_traceparent(),
                )
                message = f"published version {version.version}: {decision.reason}"
                published = {**scores, "program_version": version.version}
                done = await self._close(conn, "succeeded", message, details, **published)
                if done is None:  # reaped or cancelled meanwhile: publish nothing
                    raise _Abandoned()
        self._wake()
        log.info("job %s: %s", job.job_id, message)
        return done


class _Abandoned(OptimizerError):
    def __init__(self) -> None:
        super().__init__("job was finished elsewhere before it could publish")
