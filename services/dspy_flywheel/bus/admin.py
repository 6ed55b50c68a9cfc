"""Topic provisioning: create what is missing with the partitions and cleanup policy we want."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Iterable

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError

from dspy_flywheel.bus.preflight import start_client
from dspy_flywheel.contracts.topics import Topics, TopicSpec
from dspy_flywheel.settings import KafkaSettings

log = logging.getLogger(__name__)


VISIBLE_WITHIN_S = 30.0


async def ensure_topics(kafka: KafkaSettings, topics: Topics | Iterable[TopicSpec]) -> list[str]:
    """Create missing topics and wait until the broker's metadata shows all of them with their
    partitions and leaders; return the names created now. Idempotent.

    A consumer group that joins before a new topic is in the metadata is given no partitions
    of it, and faust does not ask again (seen in a fresh-clone CI run: the collector idled).
    """
    specs = topics.specs() if isinstance(topics, Topics) else list(topics)
    admin = AIOKafkaAdminClient(**kafka.client_kwargs())
    await start_client(admin, kafka)
    try:
        existing = set(await admin.list_topics())
        new = [
            NewTopic(
                name=s.name,
                num_partitions=s.partitions,
                replication_factor=1,
                topic_configs={"cleanup.policy": "compact"} if s.compacted else {},
            )
            for s in specs
            if s.name not in existing
        ]
        if new:
            with contextlib.suppress(TopicAlreadyExistsError):  # raced with another provisioner
                await admin.create_topics(new)
            log.info("created topics: %s", ", ".join(t.name for t in new))
        await _until_visible(admin, [s.name for s in specs])
        return [t.name for t in new]
    finally:
        await admin.close()


async def _until_visible(admin: AIOKafkaAdminClient, names: list[str]) -> None:
    """Until every topic is in the metadata with partitions, each with a leader (the count
    may differ from ours: a topic created earlier by someone else keeps its own)."""
    deadline = time.monotonic() + VISIBLE_WITHIN_S
    missing = sorted(names)
    while missing:
        described = await admin.describe_topics(missing)
        missing = sorted(
            d["topic"]
            for d in described
            if d["error_code"] != 0
            or not d["partitions"]
            or any(p["leader"] < 0 for p in d["partitions"])
        )
        if not missing:
            return
        if time.monotonic() > deadline:
            log.warning("topics not in the broker's metadata yet: %s", ", ".join(missing))
            return
        await asyncio.sleep(0.1)
