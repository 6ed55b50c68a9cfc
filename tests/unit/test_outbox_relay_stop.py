"""The outbox relay ends when its service's ``stop`` is set, even after a lost cancellation.

On Python 3.11 ``asyncio.wait_for`` swallows a cancellation that arrives as the awaited event
completes; a relay that only ended by being cancelled then ran forever and a service's
shutdown hung (seen in CI: a rollout test's teardown waited 30 s for it)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from dspy_flywheel.bus import OutboxRelay


class SwallowsOneCancel:
    """An outbox source with nothing pending that loses the first cancellation it sees."""

    def __init__(self) -> None:
        self.waiting = asyncio.Event()
        self.swallowed = False

    async def relay(self, limit: int, send: Callable[[Sequence[Any]], Awaitable[None]]) -> int:
        if not self.swallowed:
            self.waiting.set()
            try:
                await asyncio.sleep(60)
            except asyncio.CancelledError:
                self.swallowed = True  # as wait_for does when its event is already set
        return 0


async def test_relay_ends_on_stop_when_its_cancellation_was_lost() -> None:
    source = SwallowsOneCancel()
    relay = OutboxRelay(source, producer=None, poll_s=0.01)
    stop = asyncio.Event()
    task = asyncio.create_task(relay.run(stop))
    await asyncio.wait_for(source.waiting.wait(), 2)
    stop.set()  # what ``supervise`` does before it cancels the loops
    task.cancel()
    await asyncio.wait_for(task, 2)
    assert source.swallowed
    assert not task.cancelled()  # it ended by itself, on stop
