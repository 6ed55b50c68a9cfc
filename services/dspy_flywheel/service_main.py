"""How each service's ``python -m`` starts and stops.

    from dspy_flywheel.service_main import exit_cleanly_on_early_stop, serve
    exit_cleanly_on_early_stop()   # before the slow imports (dspy, faust: seconds)
    from dspy_flywheel.trigger.app import run
    serve(run, TriggerSettings)

A SIGTERM that arrives while the service is still importing ends it with exit code 0 (nothing
was started, so nothing is lost); once ``serve`` runs, SIGINT/SIGTERM set the service's stop
event and ``run`` shuts down in order.

Before ``run`` starts, ``preflight.check_connections`` tries the Kafka and PostgreSQL settings:
settings that cannot work (wrong password, unknown CA, plaintext client at a TLS listener,
expired certificate, ...) end the process with exit code 2 and one ERROR line naming the
setting to fix.

That shutdown is bounded: with Kafka or PostgreSQL gone, a close can stall (producer and pool
closes are cut after 5 s each: ``bus.stop_producer``, ``store.pool.close_pool``; anything else
is not). After ``FLYWHEEL_SHUTDOWN_GRACE_S`` seconds (default 25) the process logs where its
tasks wait and exits with code 1. Nothing is lost that way: offsets are committed only after
their work is durable, outboxes are re-sent and orphaned jobs reaped on the next start.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys
from collections.abc import Awaitable, Callable
from types import FrameType
from typing import Any, TypeVar

S = TypeVar("S")
LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
DEFAULT_GRACE_S = 25.0
UNCLEAN_EXIT = 1

log = logging.getLogger(__name__)


def _exit(signum: int, frame: FrameType | None) -> None:
    sys.exit(0)


def exit_cleanly_on_early_stop() -> None:
    signal.signal(signal.SIGTERM, _exit)


def serve(run: Callable[..., Awaitable[Any]], settings: Callable[[], S]) -> None:
    """Configure logging, check the connection settings, and run ``run(settings(),
    stop=event)`` until SIGINT/SIGTERM."""
    # Imported here: this module must load fast, before exit_cleanly_on_early_stop() runs.
    from dspy_flywheel.preflight import check_connections, exit_on_setup_error

    logging.basicConfig(level=logging.INFO, format=LOG_FORMAT)
    with exit_on_setup_error():
        loaded = settings()
        asyncio.run(check_connections(loaded))
    asyncio.run(run_until_signal(run, loaded))


def _waiting_at() -> list[str]:
    """Where each unfinished task of this loop is suspended (innermost frame)."""
    places = []
    for task in asyncio.all_tasks():
        frames = task.get_stack()
        where = f"{frames[-1].f_code.co_filename}:{frames[-1].f_lineno}" if frames else "?"
        places.append(f"{task.get_name()} at {where}")
    return sorted(places)


def shutdown_grace_s() -> float:
    raw = os.environ.get("FLYWHEEL_SHUTDOWN_GRACE_S", "")
    try:
        grace = float(raw) if raw else DEFAULT_GRACE_S
    except ValueError:
        raise SystemExit(
            f"FLYWHEEL_SHUTDOWN_GRACE_S must be a number of seconds, got {raw!r}"
        ) from None
    if grace <= 0:
        raise SystemExit(f"FLYWHEEL_SHUTDOWN_GRACE_S must be > 0, got {raw!r}")
    return grace


async def run_until_signal(
    run: Callable[..., Awaitable[Any]], settings: Any, grace_s: float | None = None
) -> None:
    """``run(settings, stop=event)`` on this loop; SIGINT/SIGTERM set the event, and the
    process exits with code 1 if ``run`` has not returned ``grace_s`` seconds later."""
    grace = shutdown_grace_s() if grace_s is None else grace_s
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    service = asyncio.ensure_future(run(settings, stop=stop))
    stopping = asyncio.ensure_future(stop.wait())
    await asyncio.wait({service, stopping}, return_when=asyncio.FIRST_COMPLETED)
    stopping.cancel()
    if not service.done():
        done, _ = await asyncio.wait({service}, timeout=grace)
        if not done:
            log.error(
                "shutdown still not finished after %.0f s (FLYWHEEL_SHUTDOWN_GRACE_S): exiting "
                "now; work not yet acknowledged is redelivered on the next start; still "
                "waiting: %s",
                grace,
                "; ".join(_waiting_at()) or "-",
            )
            logging.shutdown()
            os._exit(UNCLEAN_EXIT)  # the stuck close may ignore cancellation: don't wait on it
    await service
