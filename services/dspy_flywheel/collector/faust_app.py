"""faust-streaming engine: one agent reads both topics in batches and acks after the DB commit.

The agent iterates ``stream.noack_take(batch_max, within)``: faust does not acknowledge those
events by itself; the agent acknowledges exactly the events ``Collector.process`` reports as
durable (DB transaction committed); events held in the join window stay unacknowledged until a
later batch, the ``release_held`` timer or a revocation writes them. faust's consumer commits
the highest contiguous acknowledged offset per partition every ``commit_interval_s``, so a
committed offset
never runs ahead of the database. A SIGKILL between DB commit and offset commit redelivers the
tail, which the sink's idempotency gate skips.

The app uses no faust tables (join state is in PostgreSQL), no web server and no leader topic.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import io
import logging
from collections.abc import AsyncIterator, Mapping
from typing import Any, cast

import faust
from faust.transport.consumer import Consumer
from faust.types import TP, EventT, StreamT

from dspy_flywheel.collector.core import Collector
from dspy_flywheel.collector.events import RawMessage
from dspy_flywheel.collector.settings import CollectorSettings
from dspy_flywheel.metrics.kafka import note_records
from dspy_flywheel.settings import KafkaSettings

log = logging.getLogger(__name__)
STOP_TIMEOUT_S = 30.0


def _refuse_commits_past_a_head_gap() -> None:
    """Fix faust-streaming's commit of an unacknowledged message at a partition's head.

    ``Consumer._new_offset`` (0.15.3) skips its commit only when ``min(acked) - committed > 1``,
    but the committed offset is the next one to read: with exactly that one message still
    unacknowledged (an event held in the join window) it commits past it, and the event is
    lost if this instance dies before writing it (seen in the two-instance SIGKILL test).
    Patched once per process; partitions with known gaps (compaction) keep faust's logic.
    """
    original = Consumer._new_offset
    if getattr(original, "flywheel_patched", False):
        return

    def new_offset(self: Consumer, tp: TP) -> int | None:
        acked = self._acked[tp]
        committed = self._committed_offset[tp]
        if acked and committed is not None and not self._gap[tp] and min(acked) > committed:
            return None  # the message at `committed` is not acknowledged yet
        return original(self, tp)

    new_offset.flywheel_patched = True  # type: ignore[attr-defined]
    Consumer._new_offset = new_offset  # type: ignore[method-assign]


def faust_credentials(kafka: KafkaSettings) -> faust.types.auth.CredentialsT | None:
    kw = kafka.client_kwargs()
    ssl_context = kw.get("ssl_context")
    if kafka.security_protocol.startswith("SASL"):
        return faust.SASLCredentials(
            username=kw["sasl_plain_username"],
            password=kw["sasl_plain_password"],
            mechanism=kw["sasl_mechanism"],
            ssl_context=ssl_context,
        )
    if ssl_context is not None:
        return faust.SSLCredentials(ssl_context)
    return None


def to_raw(event: EventT[bytes]) -> RawMessage:
    m = event.message
    headers: Any = m.headers or []
    if isinstance(headers, Mapping):
        headers = list(headers.items())
    return RawMessage(m.topic, m.partition, m.offset, m.key, m.value, list(headers), event)


def ack(raws: list[RawMessage]) -> None:
    """Acknowledge durable events; faust commits the contiguous acknowledged prefix."""
    for raw in raws:
        raw.token.ack()


def base_app(settings: CollectorSettings) -> tuple[faust.App, faust.TopicT]:
    """The collector's faust app, without agents or timers, and its source: both topics, raw
    bytes (``collector_throughput.py`` times faust alone on it)."""
    _refuse_commits_past_a_head_gap()
    app = faust.App(
        settings.consumer_group(settings.group_id),
        broker=settings.kafka.faust_broker(),
        broker_credentials=faust_credentials(settings.kafka),
        broker_commit_interval=settings.commit_interval_s,
        broker_session_timeout=settings.session_timeout_s,
        broker_heartbeat_interval=settings.session_timeout_s / 4,
        consumer_auto_offset_reset="earliest",
        store="memory://",
        web_enabled=False,
        topic_disable_leader=True,
        autodiscover=False,
        datadir=str(settings.data_dir / settings.consumer_group(settings.group_id)),
        stream_buffer_maxsize=max(4096, 2 * settings.batch_max),
        stream_wait_empty=False,  # held events stay unacked; on revoke they are flushed instead
    )
    source = app.topic(
        *settings.source(),
        key_type=bytes,
        value_type=bytes,
        key_serializer="raw",
        value_serializer="raw",
    )
    return app, source


@contextlib.asynccontextmanager
async def running(app: faust.App) -> AsyncIterator[faust.Worker]:
    """Run ``app`` in this event loop (no signal handlers, no banner) until the block exits."""
    worker = faust.Worker(
        app,
        loop=asyncio.get_running_loop(),
        daemon=False,
        quiet=True,
        override_logging=False,
        redirect_stdouts=False,
        stdout=io.StringIO(),  # faust's banner/spinner; our logging goes through `logging`
    )
    worker.install_signal_handlers = lambda: None  # type: ignore[method-assign]  # ours decide
    await worker.start()
    try:
        yield worker
    finally:
        try:
            await asyncio.wait_for(worker.stop(), STOP_TIMEOUT_S)
        except TimeoutError:
            log.warning("faust worker did not stop within %.0fs", STOP_TIMEOUT_S)


def build_app(settings: CollectorSettings, collector: Collector) -> faust.App:
    app, source = base_app(settings)

    @app.agent(source, concurrency=1, name="collect")
    async def collect(stream: StreamT[bytes]) -> None:
        batches = cast(faust.Stream[bytes], stream).noack_take  # StreamT does not declare it
        async for events in batches(settings.batch_max, within=settings.batch_within_s):
            raws = [to_raw(cast(EventT[bytes], e)) for e in events]
            done(await collector.until_done(functools.partial(collector.process, raws), "batch"))

    def done(raws: list[RawMessage]) -> None:
        ack(raws)
        note_records(
            settings.group_id,
            [(r.topic, r.partition, r.offset) for r in raws],
            lambda topic, partition: app.consumer.highwater(TP(topic, partition)),
        )

    # faust's decorators are untyped: type: ignore[untyped-decorator] below
    @app.timer(max(settings.hold_s / 2, 0.1), name="release_held")  # type: ignore[untyped-decorator]
    async def release_held() -> None:
        if collector.held:
            done(await collector.until_done(collector.release_aged, "releasing held events"))

    @app.on_partitions_revoked.connect  # type: ignore[arg-type]  # mode's union of callables
    async def on_revoked(sender: Any, *args: Any, signal: Any, **kwargs: Any) -> None:
        done(await collector.until_done(collector.flush, "flushing held events"))

    return app


async def run_faust(
    settings: CollectorSettings,
    collector: Collector,
    stop: asyncio.Event,
    ready: asyncio.Event | None = None,
) -> None:
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    app = build_app(settings, collector)
    async with running(app):
        group = settings.consumer_group(settings.group_id)
        log.info("collector (faust) consuming %s, %s as group %r", *settings.source(), group)
        if ready is not None:
            ready.set()
        await stop.wait()
        ack(await collector.flush())
