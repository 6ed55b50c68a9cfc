"""Shutdown never waits on a dead broker or database for longer than its bound."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any, cast

import asyncpg
import pytest
from aiokafka import AIOKafkaProducer

from dspy_flywheel.bus import stop_producer
from dspy_flywheel.store.pool import close_pool


class HangingProducer:
    """``stop()`` waits forever, as aiokafka's does while its batches wait for a dead broker."""

    def __init__(self) -> None:
        self.cancelled = False

    async def stop(self) -> None:
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            self.cancelled = True
            raise


class HangingPool:
    def __init__(self) -> None:
        self.terminated = False

    async def close(self) -> None:
        await asyncio.Event().wait()

    def terminate(self) -> None:
        self.terminated = True


class QuickPool(HangingPool):
    async def close(self) -> None:
        return None


async def test_producer_stop_is_cut_after_its_timeout(caplog: pytest.LogCaptureFixture) -> None:
    producer = HangingProducer()
    started = time.monotonic()
    with caplog.at_level(logging.WARNING):
        await stop_producer(cast(AIOKafkaProducer, producer), timeout_s=0.2)
    assert 0.2 <= time.monotonic() - started < 2
    assert producer.cancelled
    assert "did not stop within" in caplog.text


async def test_pool_close_falls_back_to_terminate(caplog: pytest.LogCaptureFixture) -> None:
    pool = HangingPool()
    with caplog.at_level(logging.WARNING):
        await close_pool(cast(asyncpg.Pool, pool), timeout_s=0.2)
    assert pool.terminated
    assert "terminating it" in caplog.text


async def test_pool_that_closes_is_not_terminated() -> None:
    pool: Any = QuickPool()
    await close_pool(pool, timeout_s=0.2)
    assert not pool.terminated
