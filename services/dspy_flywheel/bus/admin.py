"""Topic provisioning: create what is missing with the partitions and cleanup policy we want."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterable

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError

from dspy_flywheel.contracts.topics import Topics, TopicSpec
from dspy_flywheel.settings import KafkaSettings

log = logging.getLogger(__name__)


async def ensure_topics(kafka: KafkaSettings, topics: Topics | Iterable[TopicSpec]) -> list[str]:
    """Create missing topics; return the names created now. Idempotent."""
    specs = topics.specs() if isinstance(topics, Topics) else list(topics)
    admin = AIOKafkaAdminClient(**kafka.client_kwargs())
    await admin.start()
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
        return [t.name for t in new]
    finally:
        await admin.close()
