"""Task supervision: a service's loops run side by side; one ending stops them all.

``supervise`` runs named loops until ``stop`` is set or any loop returns or fails. Then it
sets ``stop``, cancels every loop still running, waits for them, logs each failure and
re-raises the first one (the service exits with code 1, see ``service_main``). ``ready`` is set
once the loops are started and ``ready_when`` (e.g. "the intake consumer joined its group")
is set, unless a loop ended first.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Coroutine, Mapping
from typing import Any

log = logging.getLogger(__name__)

Loop = Coroutine[Any, Any, object]


async def supervise(
    loops: Mapping[str, Loop],
    stop: asyncio.Event,
    *,
    ready: asyncio.Event | None = None,
    ready_when: asyncio.Event | None = None,
) -> None:
    tasks = [asyncio.create_task(loop, name=name) for name, loop in loops.items()]
    stopping = asyncio.create_task(stop.wait(), name="stop")
    try:
        if ready_when is not None:
            started = asyncio.create_task(ready_when.wait())
            await asyncio.wait([started, stopping, *tasks], return_when=asyncio.FIRST_COMPLETED)
            started.cancel()
        if ready is not None and (ready_when is None or ready_when.is_set()):
            ready.set()
        await asyncio.wait([stopping, *tasks], return_when=asyncio.FIRST_COMPLETED)
    finally:
        stop.set()
        for task in tasks:
            task.cancel()
        await asyncio.gather(stopping, *tasks, return_exceptions=True)
    failed = [t for t in tasks if not t.cancelled() and t.exception() is not None]
    for task in failed:
        log.error("loop %s failed: %r", task.get_name(), task.exception())
    if failed:
        raise failed[0].exception()  # type: ignore[misc]  # filtered to non-None above


async def every(
    seconds: float, job: Callable[[], Awaitable[object]], name: str, *, survive_errors: bool = True
) -> None:
    """Run ``job`` every ``seconds`` (after each wait); a failure is logged and the next run
    happens as planned, or (``survive_errors=False``) it ends the loop."""
    while True:
        await asyncio.sleep(seconds)
        try:
            await job()
        except Exception:
            if not survive_errors:
                raise
            log.exception("%s failed", name)
