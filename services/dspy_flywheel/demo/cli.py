"""``flywheel demo``."""

from __future__ import annotations

import argparse
import logging
from typing import Any

from dspy_flywheel.demo.runner import DemoOptions, run_demo


def _at_least_one(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be 1 or more, got {value}")
    return value


async def _demo(args: argparse.Namespace) -> int:
    if not args.verbose:  # the live display is the output; libraries' INFO lines are noise here
        logging.getLogger().setLevel(logging.WARNING)
    opts = DemoOptions(
        model=args.model,
        max_before=args.max_before,
        after_calls=args.after,
        timeout_s=args.timeout_min * 60,
        seed=args.seed,
        concurrency=args.concurrency,
    )
    return await run_demo(opts)


def register(sub: Any) -> None:
    p = sub.add_parser("demo", help="run the self-improving demo worker end to end")
    p.add_argument("--model", default="qwen1.5b", help="qwen1.5b (default) | smollm2 | path.gguf")
    p.add_argument(
        "--max-before",
        type=int,
        default=60,
        help="most labeled calls to serve while waiting for the trigger",
    )
    p.add_argument("--after", type=int, default=12, help="calls to serve after the hot reload")
    p.add_argument("--timeout-min", type=float, default=14.0, help="give up after this long")
    p.add_argument("--seed", type=int, default=7, help="traffic order")
    p.add_argument(
        "--concurrency",
        type=_at_least_one,
        default=None,
        help="calls in flight at once (default: the shared LM server's slots; else 1)",
    )
    p.set_defaults(func=_demo)
