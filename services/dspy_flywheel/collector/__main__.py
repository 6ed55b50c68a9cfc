"""``python -m dspy_flywheel.collector``: run the collector until SIGINT/SIGTERM."""

from __future__ import annotations

import asyncio
import logging
import signal

from dspy_flywheel.collector.app import run
from dspy_flywheel.collector.settings import CollectorSettings


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
