"""``python -m dspy_flywheel.optimizer``: run the optimizer service until SIGINT/SIGTERM."""

from __future__ import annotations

import asyncio
import logging
import signal

from dspy_flywheel.optimizer.app import run
from dspy_flywheel.optimizer.settings import OptimizerSettings


async def _main() -> None:
    settings = OptimizerSettings()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await run(settings, stop=stop)


def main() -> None:
    logging.basicConfig(level=logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    asyncio.run(_main())


if __name__ == "__main__":
    main()
