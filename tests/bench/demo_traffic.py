"""The demo's traffic served one call at a time vs several in flight, through the shared LM server.

    python tests/bench/demo_traffic.py [--calls 12] [--levels 1,4] [--train 13]

The demo worker's two programs, as ``flywheel demo`` serves them: the code's zero-shot
``Predict(RouteTicket)`` (the phases before the optimization) and the ``RetrievalFewShot``
program compiled from the first ``--train`` demo tickets (the canary and after the reload). At
each level, each program answers ``--calls`` fresh demo tickets on that many threads (DSPy module
calls, the adapter's fallback included; levels alternate, so load drifts hit both alike). The
machine's shared server is used (``FLYWHEEL_LM_*`` settings; run it under the model lock).
Last line: ``demo_traffic zero_shot_ratio=… few_shot_ratio=… levels=…`` where a ratio is the
highest level's calls/s over the first level's.
"""

from __future__ import annotations

import argparse
import os
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import repo_root  # noqa: F401  (puts the repository on sys.path)


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=12, help="calls per program and level")
    parser.add_argument("--levels", default="1,4", help="calls in flight")
    parser.add_argument("--train", type=int, default=13, help="tickets the few-shot learns from")
    return parser.parse_args(argv)


def run_level(program: Any, tickets: list[Any], level: int) -> tuple[float, int]:
    """(calls/s, correct answers) for ``tickets`` served ``level`` at a time."""
    from dspy_flywheel.demo.worker import label_match

    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=level) as pool:
        predictions = list(pool.map(lambda ex: program(ticket=ex.ticket), tickets))
    elapsed = time.perf_counter() - started
    correct = sum(label_match(ex, pred) for ex, pred in zip(tickets, predictions, strict=True))
    return len(tickets) / elapsed, correct


def main(argv: list[str] | None = None) -> None:
    args = parse(argv)
    os.environ.setdefault("FLYWHEEL_LM_MAX_TOKENS", "64")  # as the demo sets it
    import dspy

    from dspy_flywheel.compile.strategies import RetrievalFewShot
    from dspy_flywheel.demo.traffic import ticket_stream
    from dspy_flywheel.demo.worker import RouteTicket
    from dspy_flywheel.lm import build_lm, configure_lm, engine_stats

    levels = [int(level) for level in args.levels.split(",")]
    stream = ticket_stream(7)
    train, rest = stream[: args.train], stream[args.train :]
    runs = len(levels) * 2  # one batch of fresh tickets per program and level
    needed = runs * args.calls + 1
    if len(rest) < needed:
        raise SystemExit(f"only {len(rest)} demo tickets left; ask for fewer calls")
    lm = build_lm()
    configure_lm(lm)  # the adapter the demo serves with
    programs = {
        "zero_shot": dspy.Predict(RouteTicket),
        "few_shot": RetrievalFewShot().compile(dspy.Predict(RouteTicket), trainset=train),
    }
    for program in programs.values():  # warm-up: the instruction's prefix in the server's cache
        program(ticket=rest[0].ticket)
    batches = iter(rest[1 + i * args.calls : 1 + (i + 1) * args.calls] for i in range(runs))
    print(f"levels={levels} calls/level={args.calls} load={os.getloadavg()[0]:.2f}")
    header = ("program", "level", "calls/s", "s/call", "LM calls", "correct", "load")
    print("{:<10} {:>5} {:>8} {:>7} {:>8} {:>7} {:>5}".format(*header))
    results: dict[tuple[str, int], float] = {}
    for level in levels:
        for name, program in programs.items():
            before = engine_stats(lm)
            cps, correct = run_level(program, next(batches), level)
            results[(name, level)] = cps
            calls = (engine_stats(lm) - before).calls
            print(
                f"{name:<10} {level:>5} {cps:>8.3f} {1 / cps:>7.2f} {calls:>8} "
                f"{correct:>4}/{args.calls:<2} {os.getloadavg()[0]:>5.2f}",
                flush=True,
            )
    low, high = levels[0], levels[-1]
    ratios = {name: results[(name, high)] / results[(name, low)] for name in programs}
    print(
        f"demo_traffic zero_shot_ratio={ratios['zero_shot']:.2f} "
        f"few_shot_ratio={ratios['few_shot']:.2f} levels={low}->{high}"
    )


if __name__ == "__main__":
    main()
