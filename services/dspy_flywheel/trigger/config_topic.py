"""The compacted ``trigger-config`` topic: key = worker id, value = TriggerConfig, null = removed.

``read_configs`` reads it from the beginning to its current end (what ``trigger set/show``
use); the service follows it with ``config_parser`` (``store.stateful.Opened.follow_config``):
read at startup, then new values applied as they arrive.
A record that does not decode or validate is skipped (the worker keeps its previous config)
and reported to ``on_invalid``: the trigger service turns it into an Alert.
"""

from __future__ import annotations

from collections.abc import Callable

from dspy_flywheel.bus.compacted import read_compacted, write_compacted
from dspy_flywheel.bus.guard import Record
from dspy_flywheel.contracts.codec import decode
from dspy_flywheel.contracts.events import TriggerConfig
from dspy_flywheel.contracts.refs import WorkerRefs
from dspy_flywheel.contracts.validate import InvalidInput, check_id
from dspy_flywheel.settings import KafkaSettings
from dspy_flywheel.trigger.config import ConfigError, InvalidConfig, TriggerPolicyConfig

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


def config_parser(on_invalid: InvalidCallback) -> Callable[[Record], Parsed]:
    """The service's ``parse_config_record``: a record that is not a valid config is reported
    to ``on_invalid``, then raises (the follower dead-letters it: the trigger service owns
    this topic's DLQ)."""

    def parse(record: Record) -> Parsed:
        try:
            return parse_config_record(record)
        except ValueError as exc:  # DecodeError, ConfigError, InvalidInput
            source = f"{record.topic}:{record.partition}:{record.offset}"
            on_invalid(InvalidConfig(source, _key_worker(record.key), str(exc)[:1000]))
            raise

    return parse


async def read_configs(kafka: KafkaSettings, topic: str) -> dict[str, TriggerPolicyConfig]:
    """Every worker's current config (a one-off read of the compacted topic)."""
    return await read_compacted(kafka, topic, parse_config_record)


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
    await write_compacted(kafka, topic, config.worker_id, config)


async def delete_config(kafka: KafkaSettings, topic: str, worker_id: str) -> None:
    """Publish a tombstone: the worker falls back to having no trigger config."""
    await write_compacted(kafka, topic, worker_id, None)
