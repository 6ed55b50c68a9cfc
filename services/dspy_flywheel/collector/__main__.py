"""``python -m dspy_flywheel.collector``: run the collector until SIGINT/SIGTERM."""

from __future__ import annotations

import signal
import sys
from types import FrameType


def _exit_during_startup(signum: int, frame: FrameType | None) -> None:
    sys.exit(0)  # asked to stop before consuming anything: a clean exit


# Imports below take seconds (dspy, faust); a stop request in that window exits cleanly.
signal.signal(signal.SIGTERM, _exit_during_startup)

import asyncio  # noqa: E402
import logging  # noqa: E402

from dspy_flywheel.collector.app import run  # noqa: E402
from dspy_flywheel.collector.settings import CollectorSettings  # noqa: E402


async def serve(settings: CollectorSettings | None = None) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await run(settings or CollectorSettings(), stop=stop)


def main() -> None:
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    asyncio.run(serve())


if __name__ == "__main__":
    main()
