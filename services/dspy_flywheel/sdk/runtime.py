"""A worker's background side: IO thread, spool, emitter, hot reload, config registration.

Nothing here blocks on Kafka at start: with no broker at all the worker serves its code's
program, events go to the spool, and every client keeps retrying in the background. Kafka
settings that cannot work (wrong password, unknown CA, ...) are logged once as an ERROR naming
the setting, and nothing retries them (``Runtime._provision``).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import fcntl
import logging
import os
import time
from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING, Any

from aiokafka.errors import KafkaConnectionError

from dspy_flywheel.bus.admin import ensure_topics
from dspy_flywheel.bus.preflight import check_kafka
from dspy_flywheel.contracts.events import TriggerConfig, now_ms
from dspy_flywheel.contracts.ids import new_id
from dspy_flywheel.contracts.topics import TopicSpec
from dspy_flywheel.sdk import config_sync
from dspy_flywheel.sdk.delivery import KafkaState
from dspy_flywheel.sdk.emitter import Emitter, Pending
from dspy_flywheel.sdk.ioloop import IOLoop
from dspy_flywheel.sdk.programs import Outcome, ProgramSlot
from dspy_flywheel.sdk.reloader import Reloader
from dspy_flywheel.sdk.settings import WorkerSettings
from dspy_flywheel.sdk.spool import Spool
from dspy_flywheel.sdk.spool_crypto import (
    SpoolSealer,
    open_owner_only,
    owner_only_dir,
    spool_cipher,
)
from dspy_flywheel.security.errors import ConnectionSetupError

if TYPE_CHECKING:
    from dspy_flywheel.sdk.worker import Worker

log = logging.getLogger(__name__)

_MAX_SPOOL_SIBLINGS = 16


def open_spool(settings: WorkerSettings, worker_id: str) -> tuple[Spool, int]:
    """The worker's sealed spool in the first directory of its ``spool_path`` (``base``),
    ``base.1``, ... that no live process holds, and the descriptor holding its lock.

    A restarted worker gets its old directory back (the lock died with the old process) and
    replays it; a second live instance with the same worker id gets a sibling.
    """
    key = settings.spool_key.get_secret_value() if settings.spool_key else None
    sealer = SpoolSealer(spool_cipher(key, settings.spool_key_path(worker_id)))
    base, max_bytes = settings.spool_path(worker_id), settings.spool_max_bytes
    for n in range(_MAX_SPOOL_SIBLINGS):
        directory = base if n == 0 else base.with_name(f"{base.name}.{n}")
        owner_only_dir(directory)
        fd = open_owner_only(directory / "lock", os.O_RDWR | os.O_CREAT)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            continue
        segment_bytes = settings.spool_segment_bytes
        spool = Spool(directory, max_bytes=max_bytes, segment_bytes=segment_bytes, sealer=sealer)
        return spool, fd
    raise RuntimeError(f"all {_MAX_SPOOL_SIBLINGS} spool directories of {base} are in use")


class Runtime:
    def __init__(
        self, worker: Worker, slot: ProgramSlot, on_outcome: Callable[[Outcome], None]
    ) -> None:
        settings = worker.settings
        self._worker = worker
        self._settings = settings
        self.loop = IOLoop(f"flywheel-{worker.worker_id}")
        self.emitter: Emitter | None = None
        self.reloader: Reloader | None = None
        self.trigger_config: TriggerConfig | None = None
        self._lock_fd: int | None = None
        self._background: list[concurrent.futures.Future[Any]] = []
        self.kafka_state = KafkaState()  # every Kafka client waits for kafka_state.ready
        topics = settings.topics
        wanted = {
            topics.executions,
            topics.feedback,
            topics.program_updated,
            topics.program_rollouts,
            topics.program_acks,
            topics.trigger_config,
        }
        self._background.append(
            self.loop.submit(self._provision([s for s in topics.specs() if s.name in wanted]))
        )
        if settings.emit:
            spool, self._lock_fd = open_spool(settings, worker.worker_id)
            if spool.has_pending():
                log.info(
                    "%s: %d event(s) in the spool %s from an earlier run; replaying",
                    worker.worker_id,
                    spool.pending_records,
                    spool.directory,
                )
            self.emitter = Emitter(settings, self.loop, spool, worker.worker_id, self.kafka_state)
        if settings.reload:
            self.reloader = Reloader(settings, worker.worker_id, slot, on_outcome)
            self._background.append(self.loop.submit(self._after_topics(self.reloader.run())))
        if worker.optimization is not None and self.emitter is not None:
            self._background.append(
                self.loop.submit(self._after_topics(self._register_trigger_config()))
            )
        if self.reloader is not None and settings.catch_up_wait_s > 0:
            self.reloader.caught_up.wait(settings.catch_up_wait_s)

    async def _provision(self, specs: list[TopicSpec]) -> None:
        """Check the Kafka settings and create the worker's topics if missing (retrying while
        Kafka is away), then open the gate for producer and consumers.

        Settings that cannot work (``ConnectionSetupError``: wrong password, unknown CA, ...)
        keep the gate shut: one ERROR names the setting, events stay in the spool, nothing
        retries; a worker restarted with fixed settings sends them."""
        backoff = 0.2
        while True:
            try:
                await check_kafka(self._settings.kafka)
                if not self._settings.ensure_topics:
                    break
                await asyncio.wait_for(ensure_topics(self._settings.kafka, specs), 30)
                self.kafka_state.reachable = True
                break
            except ConnectionSetupError as exc:
                self.kafka_state.reachable = False
                self.kafka_state.last_error = f"settings: {exc}"
                log.error(
                    "%s: Kafka cannot be used with these settings: %s. Events stay in the "
                    "spool; nothing is sent or reloaded until the worker restarts with fixed "
                    "settings",
                    self._worker.worker_id,
                    exc,
                )
                return
            except (KafkaConnectionError, TimeoutError, OSError) as exc:
                self.kafka_state.reachable = False
                self.kafka_state.last_error = f"topics: {type(exc).__name__}: {exc}"
                log.debug("%s: topics not checked yet: %s", self._worker.worker_id, exc)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, self._settings.reconnect_backoff_max_s)
            except Exception as exc:  # e.g. not authorized: ops provisioned them (or will)
                log.warning("%s: could not check/create topics: %s", self._worker.worker_id, exc)
                break
        self.kafka_state.ready.set()

    async def _after_topics(self, job: Coroutine[Any, Any, None]) -> None:
        try:
            await self.kafka_state.ready.wait()
        except BaseException:
            job.close()
            raise
        await job

    async def _register_trigger_config(self) -> None:
        worker, emitter, optimization = self._worker, self.emitter, self._worker.optimization
        assert optimization is not None
        assert emitter is not None
        topic, wid = self._settings.topics.trigger_config, worker.worker_id
        self.trigger_config = await config_sync.register(
            self._settings.kafka,
            topic,
            wid,
            lambda: optimization.trigger_config(
                wid, worker.worker_type, worker.program_ref, worker.metric_ref, now_ms()
            ),
            lambda config: emitter.submit(
                Pending(topic, wid.encode(), config, None, None, new_id())
            ),
            backoff_max_s=self._settings.reconnect_backoff_max_s,
        )

    def stats(self) -> dict[str, Any]:
        out: dict[str, Any] = self.emitter.stats() if self.emitter is not None else {}
        if self.reloader is not None:
            out["reload"] = {
                "caught_up": self.reloader.caught_up.is_set(),
                "applied": self.reloader.applied,
                "refused": self.reloader.refused,
            }
        out["trigger_config_registered"] = self.trigger_config is not None
        return out

    def close(self, timeout: float) -> None:
        started = time.monotonic()
        for future in self._background:
            future.cancel()  # stop consuming before the emitter's final flush
        if self.emitter is not None:
            self.emitter.close(timeout)
        self.loop.stop(max(1.0, timeout - (time.monotonic() - started)))
        if self._lock_fd is not None:
            os.close(self._lock_fd)  # releases the spool lock
            self._lock_fd = None
