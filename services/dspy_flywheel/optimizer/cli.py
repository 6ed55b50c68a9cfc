"""``flywheel optimizer run``: the optimizer service in the foreground."""

from __future__ import annotations

import argparse

from dspy_flywheel.optimizer.app import run
from dspy_flywheel.optimizer.settings import OptimizerSettings


async def _run(args: argparse.Namespace) -> int:
    import asyncio
    import signal

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await run(OptimizerSettings(), stop=stop)
    return 0


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    optimizer = subparsers.add_parser("optimizer", help="the optimizer service")
    sub = optimizer.add_subparsers(dest="optimizer_command", metavar="ACTION", required=True)
    sub.add_parser("run", help="consume optimization requests until Ctrl-C").set_defaults(func=_run)
