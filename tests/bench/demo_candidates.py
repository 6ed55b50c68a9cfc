"""The demo worker's candidate programs on held-out demo tickets: accuracy and cost per call.

    python tests/bench/demo_candidates.py [--draws 7,11] [--train 20] [--test 45]

For each draw (a seed of the demo's ticket order) the first ``--train`` tickets train and the
next ``--test`` are answered, 4 in flight (the shared server's slots), by the code's zero-shot
``Predict(RouteTicket)``, by ``RetrievalFewShot(k=3)`` (one fixed demo per class plus 3
retrieved: the demo's candidate until 2026-12-07) and by ``StratifiedFewShot(20)`` (every
training row a fixed demo). Each program starts on a cold prompt cache: its s/call counts the
slots' first evaluation of its fixed prefix. ``won``/``lost`` count the tickets only the
candidate / only the code program got right (what the ship gate tests). Run it under the model
lock. Last line: ``demo_candidates <program>=<correct>/<n>@<s per call> ... rates=<won:lost>``.
"""

from __future__ import annotations

import argparse
import os
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import repo_root  # noqa: F401  (puts the repository on sys.path)

SLOTS = 4


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--draws", default="7,11", help="seeds of the ticket order")
    parser.add_argument("--train", type=int, default=20)
    parser.add_argument("--test", type=int, default=45)
    return parser.parse_args(argv)


def programs(train: list[Any]) -> dict[str, Any]:
    import dspy

    from dspy_flywheel.compile.strategies import RetrievalFewShot, StratifiedFewShot
    from dspy_flywheel.demo.worker import RouteTicket

    return {
        "zero_shot": dspy.Predict(RouteTicket),
        "retrieval_k3": RetrievalFewShot(k=3).compile(dspy.Predict(RouteTicket), trainset=train),
        "fixed_20": StratifiedFewShot(20).compile(dspy.Predict(RouteTicket), trainset=train),
    }


def answer(program: Any, tickets: list[Any]) -> tuple[list[bool], float]:
    """Whether each ticket was answered right, and the wall seconds per call, ``SLOTS`` at once."""
    from dspy_flywheel.demo.worker import label_match

    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=SLOTS) as pool:
        predictions = list(pool.map(lambda ex: program(ticket=ex.ticket), tickets))
    per_call = (time.perf_counter() - started) / len(tickets)
    return [bool(label_match(ex, p)) for ex, p in zip(tickets, predictions, strict=True)], per_call


def main(argv: list[str] | None = None) -> None:
    args = parse(argv)
    os.environ.setdefault("FLYWHEEL_LM_MAX_TOKENS", "64")  # as the demo sets it
    from dspy_flywheel.demo.traffic import ticket_stream
    from dspy_flywheel.lm import build_lm, configure_lm

    configure_lm(build_lm())  # the shared server and the adapter the demo serves with
    totals: dict[str, list[float]] = {}
    print("draw program       correct  s/call  won lost  load")
    for draw in (int(d) for d in args.draws.split(",")):
        stream = [ex.with_inputs("ticket") for ex in ticket_stream(draw)]
        train, test = stream[: args.train], stream[args.train : args.train + args.test]
        right: dict[str, list[bool]] = {}
        for name, program in programs(train).items():
            right[name], per_call = answer(program, test)
            pairs = list(zip(right[name], right["zero_shot"], strict=True))
            won = sum(c and not z for c, z in pairs)
            lost = sum(z and not c for c, z in pairs)
            row = totals.setdefault(name, [0, 0, 0.0, 0, 0])
            row[0] += sum(right[name])
            row[1] += len(test)
            row[2] += per_call * len(test)
            row[3] += won
            row[4] += lost
            print(
                f"{draw:>4} {name:<13} {sum(right[name]):>3}/{len(test):<3} {per_call:>7.2f} "
                f"{won:>4} {lost:>4} {os.getloadavg()[0]:>5.2f}",
                flush=True,
            )
    parts = [f"{n}={int(r[0])}/{int(r[1])}@{r[2] / r[1]:.2f}s" for n, r in totals.items()]
    rates = [f"{n}:{r[3] / r[1]:.3f}:{r[4] / r[1]:.3f}" for n, r in totals.items() if r[3] + r[4]]
    print("demo_candidates " + " ".join(parts) + " rates=" + ",".join(rates))


if __name__ == "__main__":
    main()
