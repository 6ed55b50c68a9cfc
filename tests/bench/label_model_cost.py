"""Cost of fitting RetrievalCascade's label model, and of one huge call, on synthetic rows.

Each size runs in a fresh process (peak RSS is per process): ROWS rows of about CHARS
characters of random words over CLASSES classes (the class name leads each row). No LM call.

    python tests/bench/label_model_cost.py [--sizes 300:5000:7 2000:5000:7 2000:200:7]

Last line: ``label_model_cost worst_s= worst_rss_mb= huge_call_s= largest_state_kb=``.
"""

from __future__ import annotations

import argparse
import json
import random
import resource
import subprocess
import sys
import time


def _text(rng: random.Random, vocab: list[str], chars: int, lead: str) -> str:
    words = [lead]
    while sum(len(w) + 1 for w in words) < chars:
        words.append(rng.choice(vocab))
    return " ".join(words)


def one(rows: int, chars: int, classes: int) -> dict[str, float]:
    import dspy

    from dspy_flywheel.compile.strategies import RetrievalCascade

    rng = random.Random(0)
    vocab = [
        "".join(rng.choices("abcdefghijklmnopqrstuvwxyz", k=rng.randint(3, 10)))
        for _ in range(20_000)
    ]
    train = [
        dspy.Example(
            ticket=_text(rng, vocab, chars, f"c{i % classes}"), queue=f"c{i % classes}"
        ).with_inputs("ticket")
        for i in range(rows)
    ]
    started = time.perf_counter()
    program = RetrievalCascade().compile(dspy.Predict("ticket -> queue"), trainset=train)
    fit_s = time.perf_counter() - started
    cascade = getattr(program, "cascade", None)
    huge = "我" * 1_000_000
    started = time.perf_counter()
    if cascade is not None:
        cascade.answer({"ticket": huge})
    return {
        "fit_s": round(fit_s, 1),
        "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024,
        "cascade": cascade is not None,
        "state_kb": len(json.dumps(program.dump_state())) // 1000,
        "huge_call_s": round(time.perf_counter() - started, 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", nargs="+", default=["300:5000:7", "2000:5000:7", "2000:200:7"])
    parser.add_argument("--one", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(one(*map(int, args.one.split(":")))))
        return
    results = []
    for size in args.sizes:
        out = subprocess.run(
            [sys.executable, __file__, "--one", size], capture_output=True, text=True, check=True
        )
        result = json.loads(out.stdout.strip().splitlines()[-1])
        results.append(result)
        print(f"{size:>14} rows:chars:classes  {result}", flush=True)
    print(
        f"label_model_cost worst_s={max(r['fit_s'] for r in results)} "
        f"worst_rss_mb={max(r['rss_mb'] for r in results)} "
        f"huge_call_s={max(r['huge_call_s'] for r in results)} "
        f"largest_state_kb={max(r['state_kb'] for r in results)}"
    )


if __name__ == "__main__":
    main()
