"""``flywheel`` command line: each service contributes its subcommands through ``cli.register``."""

from __future__ import annotations

import argparse
import asyncio
import getpass
import importlib
import inspect
import json
import logging
import sys
from collections.abc import Sequence
from typing import Any

from dspy_flywheel.security.errors import ConnectionSetupError

SETTINGS_EXIT = 2

# Modules exposing ``register(subparsers)``; each subcommand sets ``func`` (sync or async).
COMMAND_MODULES = (
    "dspy_flywheel.bus.cli", "dspy_flywheel.contracts.cli", "dspy_flywheel.collector.cli",
    "dspy_flywheel.trigger.cli", "dspy_flywheel.optimizer.cli", "dspy_flywheel.manager.cli",
    "dspy_flywheel.rollout.cli", "dspy_flywheel.demo.cli",
)  # fmt: skip


def cli_user() -> str:
    """Who runs the command, as audit rows and events name them: ``cli:<login>``."""
    try:
        return f"cli:{getpass.getuser()}"
    except Exception:  # no login name (a container without a passwd entry)
        return "cli"


def print_json(value: Any) -> None:
    print(json.dumps(value, indent=2, sort_keys=True, default=str))


def pct(value: float | None, missing: str = "-") -> str:
    """A 0..1 fraction as a percentage with one decimal, as the CLI, demo and dashboard show it."""
    return missing if value is None else f"{100 * value:.1f}%"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="flywheel", description="dspy-flywheel: self-improving DSPy workers."
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if not name.startswith(exc.name or "\0"):
                raise
            continue
        module.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    func = getattr(args, "func", None)
    if func is None:
        parser.print_help()
        return 2
    try:
        result = asyncio.run(func(args)) if inspect.iscoroutinefunction(func) else func(args)
    except ConnectionSetupError as exc:  # names the setting to fix; a traceback adds nothing
        print(f"flywheel: cannot connect: {exc}", file=sys.stderr)
        return SETTINGS_EXIT
    return int(result or 0)


if __name__ == "__main__":
    sys.exit(main())
