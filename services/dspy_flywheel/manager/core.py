"""``OptimizationManager``: the Python API over requests (Kafka) and jobs/programs (PostgreSQL).

    async with OptimizationManager(ManagerSettings()) as manager:
        job_id = await manager.execute_optimization("router", {"optimizer": "MIPROv2"})
        status = await manager.get_optimization_status(job_id)

Request settings not given (optimizer, params, program_ref, metric_ref) come from the worker's
trigger config (compacted topic), then from its last job.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from contextlib import AsyncExitStack
from dataclasses import dataclass, field, fields
from typing import Any

import asyncpg
from aiokafka import AIOKafkaProducer

from dspy_flywheel.bus import publish, start_producer, stop_producer
from dspy_flywheel.compile.catalog import canonical_name
from dspy_flywheel.contracts.events import OptimizationRequested
from dspy_flywheel.contracts.ids import new_id
from dspy_flywheel.contracts.refs import WorkerRefs, check_job_refs
from dspy_flywheel.contracts.validate import MAX_NAME_CHARS, check_id, check_text
from dspy_flywheel.manager.inputs import CONFIG_KEYS, ManagerError, checked_config
from dspy_flywheel.manager.metrics import PerformanceMetrics, performance_metrics
from dspy_flywheel.manager.settings import ManagerSettings
from dspy_flywheel.rollout import operator
from dspy_flywheel.store import create_pool, jobs, migrate, programs
from dspy_flywheel.store.pool import close_pool
from dspy_flywheel.telemetry import current_traceparent, trace_id_of, tracer
from dspy_flywheel.trigger.config_topic import read_config
from dspy_flywheel.trigger.requests import new_request

TRIGGER_TYPES = ("manual", "periodic", "performance", "batch")


@dataclass(frozen=True)
class OptimizationStatus:
    """A job as the manager reports it (``status`` is ``requested`` until the optimizer has it)."""

    job_id: str
    worker_id: str | None
    status: str
    progress: float = 0.0
    message: str | None = None
    optimizer: str | None = None
    reason: str | None = None
    program_version: int | None = None
    holdout_before: float | None = None
    holdout_after: float | None = None
    cost: dict[str, Any] = field(default_factory=dict)
    details: dict[str, Any] = field(default_factory=dict)
    created_at: str | None = None
    started_at: str | None = None
    finished_at: str | None = None
    trace_id: str | None = None  # the job's trace (its span tree: /dashboard/traces/<id>)

    @property
    def terminal(self) -> bool:
        return self.status in jobs.TERMINAL

    @classmethod
    def of(cls, job: jobs.Job) -> OptimizationStatus:
        d = job.as_dict()  # datetimes as ISO text
        same = {f.name: d[f.name] for f in fields(cls) if f.name in d}
        cost = {k: d[k] for k in ("lm_calls", "tokens", "cpu_s", "wall_s")}
        return cls(**same, cost=cost, trace_id=trace_id_of(job.traceparent))

    def as_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


class OptimizationManager:
    def __init__(
        self,
        settings: ManagerSettings | None = None,
        *,
        pool: asyncpg.Pool | None = None,
        producer: AIOKafkaProducer | None = None,
    ) -> None:
        self.settings = settings or ManagerSettings()
        self.topics = self.settings.topics
        self._pool = pool
        self._producer = producer
        self._stack = AsyncExitStack()
        self._requested: dict[str, str] = {}  # job id -> worker id, until the optimizer has it

    async def __aenter__(self) -> OptimizationManager:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def start(self) -> None:
        """Open the pool (applying pending migrations first, as the services do)."""
        if self._pool is None:
            await migrate(self.settings.postgres, self.settings.db_schema)
            self._pool = await create_pool(self.settings.postgres, self.settings.db_schema)
            self._stack.push_async_callback(close_pool, self._pool)

    async def close(self) -> None:
        await self._stack.aclose()

    @property
    def pool(self) -> asyncpg.Pool:
        if self._pool is None:
            raise RuntimeError("OptimizationManager not started: use 'async with' or start()")
        return self._pool

    async def _producer_ready(self) -> AIOKafkaProducer:
        if self._producer is None:
            self._producer = await start_producer(self.settings.kafka)
            self._stack.push_async_callback(stop_producer, self._producer)
        return self._producer

    # -- requests ------------------------------------------------------------------------

    async def _worker_defaults(self, worker_id: str) -> tuple[dict[str, Any], WorkerRefs]:
        """optimizer/params/program_ref/metric_ref from the trigger config, else the last job;
        and the references the worker registered (its config's)."""
        config = await read_config(self.settings.kafka, self.topics.trigger_config, worker_id)
        if config is not None:
            c = config
            found = (c.optimizer, c.optimizer_params, c.program_ref, c.metric_ref)
            registered = WorkerRefs(config.program_ref, config.metric_ref)
        else:
            last = await jobs.latest_for_worker(self.pool, worker_id)
            if last is None:
                return {}, WorkerRefs()
            found = (last.optimizer, last.params, last.program_ref, last.metric_ref)
            registered = WorkerRefs()
        return dict(zip(CONFIG_KEYS, found, strict=True)), registered

    async def _prepare(
        self,
        worker_id: str,
        reason: str,
        config: Mapping[str, Any],
        *,
        requested_by: str,
        evidence: Mapping[str, Any] | None = None,
    ) -> OptimizationRequested:
        """The request, every value checked (InvalidInput/ManagerError when not)."""
        check_id(worker_id, "worker_id")
        check_text(requested_by, "requested_by", MAX_NAME_CHARS)
        given = checked_config(config)
        defaults, registered = await self._worker_defaults(worker_id)
        merged = {**defaults, **given}
        optimizer = canonical_name(merged.get("optimizer") or self.settings.default_optimizer)
        params = merged.get("params") or {}
        check_job_refs(
            worker_id,
            merged.get("program_ref"),
            merged.get("metric_ref"),
            registered,
            self.settings.ref_allow_list,
        )
        return new_request(
            worker_id=worker_id,
            reason=reason,
            optimizer=optimizer,
            params=params,
            evidence=evidence or {},
            requested_by=requested_by,
            program_ref=merged.get("program_ref"),
            metric_ref=merged.get("metric_ref"),
        )

    async def _publish(self, request: OptimizationRequested) -> str:
        attributes = {
            f"flywheel.{k}": getattr(request, k) for k in ("job_id", "worker_id", "reason")
        }
        with tracer.start_as_current_span("manager.request", attributes=attributes):
            await publish(
                await self._producer_ready(),
                self.topics.optimization_requests,
                request.worker_id,
                request,
                traceparent=current_traceparent(),
            )
        self._requested[request.job_id] = request.worker_id
        return request.job_id

    async def schedule_optimization(
        self, worker_id: str, trigger_type: str = "manual", *, requested_by: str = "manager"
    ) -> str:
        """Request an optimization now with the worker's configured optimizer; returns job id."""
        if trigger_type not in TRIGGER_TYPES:
            raise ManagerError(
                f"trigger_type {trigger_type!r}; accepted: {', '.join(TRIGGER_TYPES)}"
            )
        request = await self._prepare(
            worker_id,
            trigger_type,
            {},
            requested_by=requested_by,
            evidence={"scheduled_via": "manager"},
        )
        return await self._publish(request)

    async def execute_optimization(
        self, worker_id: str, optimizer_config: Mapping[str, Any], *, requested_by: str = "manager"
    ) -> str:
        """Request an optimization with explicit settings (``optimizer``, ``params``,
        ``program_ref``, ``metric_ref``; missing ones from the worker's config)."""
        request = await self._prepare(
            worker_id, "manual", optimizer_config, requested_by=requested_by
        )
        return await self._publish(request)

    async def batch_optimize(
        self,
        worker_ids: Sequence[str],
        optimizer_config: Mapping[str, Any] | None = None,
        *,
        requested_by: str = "manager",
    ) -> dict[str, str]:
        """One request per worker, tagged with a shared batch id; returns worker → job id."""
        if not isinstance(worker_ids, list | tuple) or not worker_ids:
            raise ManagerError("batch needs a list of at least one worker id")
        for worker_id in worker_ids:  # every id is checked before anything is published
            check_id(worker_id, "worker_ids[]")
        batch_id = new_id()
        unique = list(dict.fromkeys(worker_ids))
        requests = [
            await self._prepare(
                worker_id,
                "batch",
                optimizer_config or {},
                requested_by=requested_by,
                evidence={"batch_id": batch_id, "batch_size": len(unique)},
            )
            for worker_id in unique
        ]
        return {r.worker_id: await self._publish(r) for r in requests}

    # -- jobs ----------------------------------------------------------------------------

    async def get_optimization_status(self, job_id: str) -> OptimizationStatus | None:
        job = await jobs.get(self.pool, job_id)
        if job is not None:
            self._requested.pop(job_id, None)
            return OptimizationStatus.of(job)
        if job_id in self._requested:
            return OptimizationStatus(job_id, self._requested[job_id], "requested")
        return None

    async def list_jobs(
        self, *, worker_id: str | None = None, status: str | None = None, limit: int = 50
    ) -> list[OptimizationStatus]:
        if status is not None and status not in jobs.STATUSES:
            raise ManagerError(f"status {status!r}; accepted: {', '.join(jobs.STATUSES)}")
        found = await jobs.list_jobs(self.pool, worker_id=worker_id, status=status, limit=limit)
        return [OptimizationStatus.of(j) for j in found]

    async def cancel(
        self, job_id: str, *, requested_by: str = "manager"
    ) -> OptimizationStatus | None:
        """Cancel a queued job now, or flag a running one (its optimizer kills the child)."""
        job = await jobs.cancel(self.pool, self.topics.optimization_status, job_id, requested_by)
        if job is not None:
            return OptimizationStatus.of(job)
        return await self.get_optimization_status(job_id)

    # -- programs and metrics ------------------------------------------------------------

    async def list_programs(self, worker_id: str, *, limit: int = 50) -> list[dict[str, Any]]:
        return [
            v.summary() for v in await programs.list_versions(self.pool, worker_id, limit=limit)
        ]

    # -- rollout (the rollout service applies commands; see dspy_flywheel.rollout) ---------

    async def rollout(self, worker_id: str) -> dict[str, Any]:
        """Shares, live accuracy per version with its interval, statuses, decisions."""
        return await operator.rollout_view(self.pool, worker_id)

    async def rollout_command(
        self,
        worker_id: str,
        command: str,
        version: int | None = None,
        *,
        requested_by: str,
        reason: str | None = None,
        wait_s: float = 10.0,
    ) -> dict[str, Any]:
        """promote | rollback | pin | unpin, answered by the rollout service (or None)."""
        producer = await self._producer_ready()
        return await operator.send_command(
            self.pool,
            producer,
            self.topics,
            worker_id,
            command,
            version,
            requested_by=requested_by,
            reason=reason,
            wait_s=wait_s,
        )

    async def rollout_settings(
        self, worker_id: str, changes: Mapping[str, Any] | None = None, *, updated_by: str
    ) -> dict[str, Any]:
        """The worker's canary settings, changed first when ``changes`` are given."""
        kafka, topics = self.settings.kafka, self.topics
        policy = await operator.update_policy(kafka, topics, worker_id, changes or {}, updated_by)
        return policy.to_record()

    async def get_performance_metrics(self, worker_id: str) -> PerformanceMetrics:
        scope = self.settings.trigger_scope
        scope = self.settings.topic_prefix if scope is None else scope
        return await performance_metrics(
            self.pool, worker_id, window=self.settings.accuracy_window, trigger_scope=scope
        )
