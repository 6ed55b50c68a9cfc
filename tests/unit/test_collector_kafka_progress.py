"""The kafka engine's commit listener before its consumer is set.

A rebalance while ``open_consumer`` joins the group calls ``on_partitions_revoked`` before the
engine has handed the listener its consumer; that raised ``AssertionError`` (seen in
``collector_throughput.py`` at load 12-16). Nothing was read then, so nothing is committed.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from aiokafka import TopicPartition

from dspy_flywheel.collector.kafka_loop import _Progress


class IdleCollector:
    flushed = 0

    def lowest_held_offsets(self) -> dict[tuple[str, int], int]:
        return {}

    async def flush(self) -> list[Any]:
        self.flushed += 1
        return []

    async def until_done(self, step: Callable[[], Awaitable[Any]], what: str) -> Any:
        return await step()


async def test_a_revoke_before_the_consumer_is_set_commits_nothing() -> None:
    collector = IdleCollector()
    progress = _Progress(collector)  # type: ignore[arg-type]
    progress.read(TopicPartition("executions", 0), 41)  # even with a read, no consumer: no-op
    await progress.on_partitions_revoked({TopicPartition("executions", 0)})
    assert collector.flushed == 1
    assert progress.consumer is None
