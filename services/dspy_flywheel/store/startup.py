"""What every service opens at start: its topics, the migrations, a pool and a producer.

Each step is retried (``bus.retrying``) while a broker or database is still starting or
restarting: waited for, not a failure. The pool and the producer close with the caller's stack.
"""

from __future__ import annotations

from contextlib import AsyncExitStack
from typing import Any

import asyncpg
from aiokafka import AIOKafkaProducer

from dspy_flywheel.bus import ensure_topics, retrying, start_producer, stop_producer
from dspy_flywheel.settings import FlywheelSettings
from dspy_flywheel.store.migrate import migrate
from dspy_flywheel.store.pool import close_pool, create_pool


async def open_service(
    stack: AsyncExitStack,
    settings: FlywheelSettings,
    *,
    migrations: bool = True,
    **producer_options: Any,
) -> tuple[asyncpg.Pool, AIOKafkaProducer]:
    """Topics, migrations (unless ``migrations`` is False), pool and producer."""
    kafka, postgres, schema = settings.kafka, settings.postgres, settings.db_schema
    await retrying(lambda: ensure_topics(kafka, settings.topics), "creating topics")
    if migrations:
        await retrying(lambda: migrate(postgres, schema), "migrating")
    pool = await retrying(lambda: create_pool(postgres, schema), "opening the pool")
    stack.push_async_callback(close_pool, pool)
    producer = await retrying(
        lambda: start_producer(kafka, **producer_options), "starting the producer"
    )
    stack.push_async_callback(stop_producer, producer)
    return pool, producer
