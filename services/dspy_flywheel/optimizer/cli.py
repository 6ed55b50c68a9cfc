"""``flywheel optimizer run``: the optimizer service in the foreground."""

from __future__ import annotations

import argparse

from dspy_flywheel.optimizer.app import run
from dspy_flywheel.optimizer.settings import OptimizerSettings
from dspy_flywheel.service_main import run_until_signal


async def _run(args: argparse.Namespace) -> int:
    await run_until_signal(run, OptimizerSettings())
    return 0


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    optimizer = subparsers.add_parser("optimizer", help="the optimizer service")
    sub = optimizer.add_subparsers(dest="optimizer_command", metavar="ACTION", required=True)
    sub.add_parser("run", help="consume optimization requests until Ctrl-C").set_defaults(func=_run)
