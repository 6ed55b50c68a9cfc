"""Where the LM's answers and a nearest-neighbour vote over the training rows part ways.

    python tests/bench/neighbour_probe.py tests/bench/suite/telecom_routing.json [--k 6]

On a suite task's fixed test split, through the machine's shared LM server (``FLYWHEEL_LM_*``;
run it under the model lock), 4 calls at a time, with the adapter workers serve with:

* the zero-shot program and ``RetrievalFewShot`` (the default optimizer), each row's answer;
* the labels of each row's 10 BM25-nearest training rows (no LM), voted with BM25 weights.

Prints each program's accuracy, the vote's at k = 1, 3, 5, 10, the oracle of "retrieval or the
5-vote is right", and two ensembles: the vote replaces the LM's answer when its weighted share
reaches t; the LM's answer stands only when one of the k nearest rows carries it. It is a probe
of what the LM adds over the labeled rows, not a tuning tool: every figure is on the test split.
Last line: ``neighbour_probe task= zero_shot= retrieval= knn_best= ensemble_best=``.
"""

from __future__ import annotations

import argparse
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import repo_root  # noqa: F401  (puts the repository on sys.path)

from dspy_flywheel.compile.judge import normalize

NEIGHBOURS = 10
Row = dict[str, Any]


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("task", type=Path, help="a suite task definition (<name>.json)")
    parser.add_argument("--k", type=int, default=6, help="RetrievalFewShot's retrieved demos")
    return parser.parse_args(argv)


def vote(row: Row, k: int) -> tuple[str, float]:
    """The weighted majority label of the ``k`` nearest rows and its share of the weight."""
    weights: Counter[str] = Counter()
    for label, score in row["nn"][:k]:
        weights[label] += score
    label, weight = weights.most_common(1)[0]
    return label, weight / (sum(weights.values()) or 1.0)


def accuracy(rows: list[Row], answer: Callable[[Row], str]) -> float:
    return sum(answer(r) == r["gold"] for r in rows) / len(rows)


def answers(program: Any, examples: list[Any], inputs: list[str], label: str) -> list[str]:
    def one(example: Any) -> str:
        try:
            return normalize(program(**{k: example[k] for k in inputs}).get(label))
        except Exception as exc:  # a failed call counts as a wrong answer, and says so
            print(f"  call failed: {type(exc).__name__}: {str(exc)[:120]}")
            return ""

    with ThreadPoolExecutor(max_workers=4) as pool:
        return list(pool.map(one, examples))


def main(argv: list[str] | None = None) -> None:
    args = parse(argv)
    import dspy
    from quality_lib.options import parse_options
    from quality_lib.row import load_task
    from quality_lib.suite import task_options

    from dspy_flywheel.compile.retrieval import BM25Index
    from dspy_flywheel.compile.strategies import RetrievalFewShot
    from dspy_flywheel.lm import build_lm, configure_lm, engine_stats

    options = task_options(args.task, parse_options(["--suite", str(args.task)]))
    task = load_task(options)
    split = task.split(options.seed, train=options.train, dev=options.dev, test=options.test)
    signature = task.dspy_signature()
    inputs, label = list(signature.input_fields), next(iter(signature.output_fields))
    pool = [{k: ex[k] for k in [*inputs, label]} for ex in split.train]
    index = BM25Index(pool, inputs, k=NEIGHBOURS)
    rows: list[Row] = []
    for example in split.test:
        scores = index.scores({k: example[k] for k in inputs})
        nearest = sorted(range(len(pool)), key=lambda i: (-scores[i], i))[:NEIGHBOURS]
        neighbours = [(normalize(pool[i][label]), scores[i]) for i in nearest]
        rows.append({"gold": normalize(example[label]), "nn": neighbours})

    lm = build_lm()
    configure_lm(lm)  # the adapter workers and jobs serve with
    programs = {
        "zero_shot": dspy.Predict(signature),
        "retrieval": RetrievalFewShot(k=args.k).compile(
            dspy.Predict(signature), trainset=split.train
        ),
    }
    print(f"task={options.name} train={len(pool)} test={len(rows)} label={label}", flush=True)
    for name, program in programs.items():
        started, before = time.perf_counter(), engine_stats(lm)
        for row, answer in zip(rows, answers(program, split.test, inputs, label), strict=True):
            row[name] = answer
        used = engine_stats(lm) - before
        print(
            f"{name:<10} {accuracy(rows, lambda r, n=name: r[n]):6.1%}  "
            f"{time.perf_counter() - started:6.1f}s  {used.calls} LM calls",
            flush=True,
        )
    knn = {k: accuracy(rows, lambda r, k=k: vote(r, k)[0]) for k in (1, 3, 5, 10)}
    print("vote (no LM): " + "  ".join(f"k={k} {a:.1%}" for k, a in knn.items()))
    oracle = accuracy(
        rows, lambda r: r["gold"] if r["gold"] in (r["retrieval"], vote(r, 5)[0]) else ""
    )
    print(f"oracle retrieval-or-5-vote: {oracle:.1%}")
    ensembles: dict[str, float] = {}
    for k in (3, 5, 10):
        for t in (0.5, 0.7, 0.9):
            ensembles[f"vote k={k} share>={t}"] = accuracy(
                rows, lambda r, k=k, t=t: vote(r, k)[0] if vote(r, k)[1] >= t else r["retrieval"]
            )
        ensembles[f"LM if among {k} nearest"] = accuracy(
            rows,
            lambda r, k=k: (
                r["retrieval"] if r["retrieval"] in {n for n, _ in r["nn"][:k]} else vote(r, k)[0]
            ),
        )
    for name, value in ensembles.items():
        print(f"  {name:<26} {value:6.1%}")
    best = max(ensembles, key=lambda n: ensembles[n])
    zero_shot, retrieval = (accuracy(rows, lambda r, n=n: r[n]) for n in programs)
    print(
        f"neighbour_probe task={options.name} zero_shot={zero_shot:.3f} "
        f"retrieval={retrieval:.3f} "
        f"knn_best={max(knn.values()):.3f} ensemble_best={ensembles[best]:.3f} ({best})"
    )


if __name__ == "__main__":
    main()
