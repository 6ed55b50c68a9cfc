"""The compacted ``trigger-config`` topic: key = worker id, value = TriggerConfig, null = removed.

``read_configs`` reads it from the beginning to its current end (what ``trigger set/show`` and
the service's startup use); ``ConfigFollower`` then keeps applying new values as they arrive.
A record that does not decode or validate is skipped (the worker keeps its previous config)
and reported to ``on_invalid``: the trigger service turns it into an Alert.
"""

from __future__ import annotations

from collections.abc import Callable

from aiokafka import AIOKafkaConsumer

from dspy_flywheel.bus.consumer import batches, open_consumer, read_to_end, stop_consumer
from dspy_flywheel.bus.dlq import DeadLetters
from dspy_flywheel.bus.guard import UNTIL_IT_WORKS, Record, RecordGuard
from dspy_flywheel.bus.publish import publish, start_producer
from dspy_flywheel.contracts.codec import decode
from dspy_flywheel.contracts.events import TriggerConfig
from dspy_flywheel.contracts.refs import WorkerRefs
from dspy_flywheel.contracts.validate import InvalidInput, check_id
from dspy_flywheel.settings import KafkaSettings
from dspy_flywheel.trigger.config import ConfigError, InvalidConfig, TriggerPolicyConfig

ConfigCallback = Callable[[str, TriggerPolicyConfig | None], None]
Parsed = tuple[str, TriggerPolicyConfig | None]
InvalidCallback = Callable[[InvalidConfig], None]


def _key_worker(key: bytes | None) -> str | None:
    try:
        return check_id(key.decode(), "key") if key is not None else None
    except (UnicodeDecodeError, InvalidInput):
        return None


def parse_config_record(record: Record) -> Parsed:
    """(worker id, config or None for a tombstone); raises ValueError (DecodeError,
    ConfigError, InvalidInput) on bad input."""
    key = check_id(record.key.decode(), "key") if record.key is not None else None
    if record.value is None:
        if key is None:
            raise ConfigError("tombstone without a key")
        return key, None
    event = decode(record.value, record.headers).event
    if not isinstance(event, TriggerConfig):
        raise ConfigError(f"unexpected {event.event_type} on the trigger-config topic")
    config = TriggerPolicyConfig.of(event)
    if key is not None and key != config.worker_id:
        raise ConfigError(f"record key {key!r} differs from its worker_id {config.worker_id!r}")
    return config.worker_id, config


class ConfigFollower:
    """Reads the whole config topic on ``start`` and then follows it. A record that is not a
    valid config is logged and skipped (``bus.RecordGuard`` without dead letters)."""

    def __init__(
        self,
        kafka: KafkaSettings,
        topic: str,
        *,
        fetch_max_wait_ms: int = 100,
        on_invalid: InvalidCallback | None = None,
        dead_letters: DeadLetters | None = None,
    ) -> None:
        """``dead_letters``: the trigger service's (it owns this topic's DLQ; build them with
        ``already_sent``: the topic is read from its start on every run)."""
        self.topic = topic
        self._kafka = kafka
        self._fetch_max_wait_ms = fetch_max_wait_ms
        self._consumer: AIOKafkaConsumer | None = None
        self._guard = RecordGuard(dead_letters, self._parse, retry=UNTIL_IT_WORKS)
        self._on_invalid = on_invalid

    async def start(self) -> dict[str, TriggerPolicyConfig]:
        """Read every partition from the beginning to the end; return the snapshot."""
        self._consumer = await open_consumer(
            self._kafka, [self.topic], fetch_max_wait_ms=self._fetch_max_wait_ms
        )
        snapshot: dict[str, TriggerPolicyConfig] = {}

        async def collect(parsed: Parsed) -> None:
            worker_id, config = parsed
            if config is None:
                snapshot.pop(worker_id, None)
            else:
                snapshot[worker_id] = config

        await read_to_end(self._consumer, lambda record: self._guard(record, collect))
        return snapshot

    async def follow(self, callback: ConfigCallback) -> None:
        """Apply each new value as it arrives (runs until cancelled)."""
        assert self._consumer is not None, "start() first"

        async def apply(parsed: Parsed) -> None:
            callback(*parsed)

        async for batch in batches(self._consumer, timeout_ms=1000):
            for records in batch.values():
                for record in records:
                    await self._guard(record, apply)

    async def stop(self) -> None:
        if self._consumer is not None:
            await stop_consumer(self._consumer)

    def _parse(self, record: Record) -> Parsed:
        """``parse_config_record``; a refusal is reported to ``on_invalid`` (then the guard
        logs and skips the record)."""
        try:
            return parse_config_record(record)
        except ValueError as exc:  # DecodeError, ConfigError, InvalidInput
            if self._on_invalid is not None:
                source = f"{record.topic}:{record.partition}:{record.offset}"
                worker = _key_worker(record.key)
                self._on_invalid(InvalidConfig(source, worker, str(exc)[:1000]))
            raise


async def read_configs(kafka: KafkaSettings, topic: str) -> dict[str, TriggerPolicyConfig]:
    """Every worker's current config (a one-off read of the compacted topic)."""
    follower = ConfigFollower(kafka, topic, fetch_max_wait_ms=10)
    try:
        return await follower.start()
    finally:
        await follower.stop()


async def read_config(
    kafka: KafkaSettings, topic: str, worker_id: str
) -> TriggerPolicyConfig | None:
    """One worker's current config (None when it has none)."""
    return (await read_configs(kafka, topic)).get(worker_id)


async def registered_refs(kafka: KafkaSettings, topic: str, worker_id: str) -> WorkerRefs:
    """The references the worker registered for itself: those of its current config."""
    config = await read_config(kafka, topic, worker_id)
    return WorkerRefs(config.program_ref, config.metric_ref) if config else WorkerRefs()


async def write_config(kafka: KafkaSettings, topic: str, config: TriggerPolicyConfig) -> None:
    producer = await start_producer(kafka)
    try:
        await publish(producer, topic, config.worker_id, config)
    finally:
        await producer.stop()


async def delete_config(kafka: KafkaSettings, topic: str, worker_id: str) -> None:
    """Publish a tombstone: the worker falls back to having no trigger config."""
    producer = await start_producer(kafka)
    try:
        await producer.send_and_wait(topic, None, key=worker_id.encode())
    finally:
        await producer.stop()
