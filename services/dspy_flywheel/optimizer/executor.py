"""Claims queued jobs from PostgreSQL and runs up to ``max_concurrent_jobs`` at a time."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import socket

from dspy_flywheel.optimizer.pipeline import JobRun, JobServices
from dspy_flywheel.store import jobs

log = logging.getLogger(__name__)


class JobExecutor:
    def __init__(self, services: JobServices) -> None:
        self.services = services
        self._wake = asyncio.Event()
        self._running: dict[str, asyncio.Task[object]] = {}
        self.host = socket.gethostname()
        self.pid = os.getpid()

    def wake(self) -> None:
        """A job was queued: look for work now rather than at the next poll."""
        self._wake.set()

    async def claim_and_start(self) -> int:
        """Start as many queued jobs as there are free slots; returns how many started."""
        settings = self.services.settings
        started = 0
        while len(self._running) < settings.max_concurrent_jobs:
            job = await jobs.claim_next(
                self.services.pool, settings.instance_id, self.host, self.pid
            )
            if job is None:
                break
            log.info("claimed job %s for worker %s (%s)", job.job_id, job.worker_id, job.optimizer)
            task = asyncio.create_task(
                JobRun(self.services, job).execute(), name=f"job-{job.job_id}"
            )
            self._running[job.job_id] = task
            task.add_done_callback(functools.partial(self._done, job.job_id))
            started += 1
        return started

    def _done(self, job_id: str, _task: object = None) -> None:
        self._running.pop(job_id, None)
        self._wake.set()

    async def run(self, stop: asyncio.Event) -> None:
        settings = self.services.settings
        try:
            while not stop.is_set():
                try:
                    await self.claim_and_start()
                except Exception:
                    log.exception("claiming jobs failed; retrying")
                self._wake.clear()
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), settings.poll_interval_s)
        finally:
            await self.shutdown()

    async def shutdown(self) -> None:
        """Cancel running jobs: their children are killed, the jobs are left for the reaper."""
        tasks = list(self._running.values())
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
