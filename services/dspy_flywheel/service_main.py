"""How each service's ``python -m`` starts and stops.

    from dspy_flywheel.service_main import exit_cleanly_on_early_stop, serve
    exit_cleanly_on_early_stop()   # before the slow imports (dspy, faust: seconds)
    from dspy_flywheel.trigger.app import run
    serve(run, TriggerSettings)

A SIGTERM that arrives while the service is still importing ends it with exit code 0 (nothing
was started, so nothing is lost); once ``serve`` runs, SIGINT/SIGTERM set the service's stop
event and ``run`` shuts down in order.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import sys
from collections.abc import Awaitable, Callable
from types import FrameType
from typing import Any, TypeVar

S = TypeVar("S")
LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def _exit(signum: int, frame: FrameType | None) -> None:
    sys.exit(0)


def exit_cleanly_on_early_stop() -> None:
    signal.signal(signal.SIGTERM, _exit)


def serve(run: Callable[..., Awaitable[Any]], settings: Callable[[], S]) -> None:
    """Configure logging and run ``run(settings(), stop=event)`` until SIGINT/SIGTERM."""
    logging.basicConfig(level=logging.INFO, format=LOG_FORMAT)
    asyncio.run(run_until_signal(run, settings()))


async def run_until_signal(run: Callable[..., Awaitable[Any]], settings: Any) -> None:
    """``run(settings, stop=event)`` on this loop; SIGINT/SIGTERM set the event."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await run(settings, stop=stop)
