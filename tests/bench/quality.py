"""Quality benchmark: test accuracy of a zero-shot program vs DSPy optimizers, with costs.

    python tests/bench/quality.py --task classification            # extraction, reasoning
    python tests/bench/quality.py --dataset qa.jsonl --signature "context, question -> answer" \
        --metric f1
    python tests/bench/quality.py --dataset tickets.jsonl \
        --signature "ticket: str -> queue: Literal['billing', 'technical', 'outage']" \
        --instructions "Route the ticket." --metric my_pkg.metrics:queue_match
    python tests/bench/quality.py --suite tests/bench/suite [--only telecom_routing,...]
        # every task definition (tests/bench/suite/README.md), its own fixed split; the table
        # goes to tests/bench/results/quality_suite.txt (--results PATH), rewritten after each row
    options: --seed 0 --train 98 --dev 20 (test = the rest, at least 50; --test N)
             --test-limit N (score only the first N of the test split: a named subset)
             --optimizers all | baseline,BootstrapFewShot,BootstrapFewShotWithRandomSearch,MIPROv2,
                              StratifiedFewShot,RetrievalFewShot
             --model qwen1.5b | smollm2 | /path/model.gguf   --adapter chat|json
             --threads N (DSPy; default FLYWHEEL_LM_SLOTS) --lm-threads N (llama.cpp)
             --demos 4 --labeled 4 --rs-candidates 2 [--mipro-program-aware] [--mipro-data-aware]

Rows: the zero-shot ``dspy.Predict`` of the task's signature (baseline), and the same program
compiled through ``DSPyAgent`` with BootstrapFewShot, BootstrapFewShotWithRandomSearch,
MIPROv2 (auto="light"), StratifiedFewShot and RetrievalFewShot on the train split (dev =
valset), all scored on the same test split. Each row runs in a fresh child process on the LM
from ``dspy_flywheel.lm.build_lm`` (``FLYWHEEL_LM_MODEL=--model``; the machine's shared LM
server, ``--threads`` calls at once; identical calls within a row answered from memory, as in an
optimizer job, no disk cache), so its wall time, LM calls, tokens (counted
at the engine) and peak RSS are its own. Last line:
``quality task=… baseline=… best=… best_optimizer=… gain_points=… wall_s=…`` (test accuracy in
percent; gain in percentage points over the baseline measured in the same run).
"""

from __future__ import annotations

import multiprocessing
import sys
import time
from collections.abc import Callable
from pathlib import Path
from queue import Empty

import repo_root  # noqa: F401  # first: the repository root, for tests.fixtures (the rows too)
from quality_lib.options import SHORT_NAMES, Options, OptionsError, check_split, parse_options
from quality_lib.report import format_row, format_suite_table, format_table, result_line
from quality_lib.row import RowResult, load_task, row_main, say
from quality_lib.suite import suite_options

RESULTS = Path(__file__).parent / "results"


def run_in_child(options: Options, optimizer: str) -> RowResult:
    """One row in a fresh spawned process; a crash without a result becomes a failed row."""
    context = multiprocessing.get_context("spawn")
    results = context.Queue()
    child = context.Process(
        target=row_main, args=(options, optimizer, results), name=f"quality-{optimizer}"
    )
    started = time.perf_counter()
    child.start()
    row: RowResult | None = None
    while row is None:
        try:
            row = results.get(timeout=1.0)
        except Empty:
            if not child.is_alive():
                break
    child.join()
    if row is None:
        row = RowResult(
            optimizer=optimizer,
            ok=False,
            wall_s=time.perf_counter() - started,
            error=f"child exited with code {child.exitcode} and no result",
        )
    return row


def run_task(
    options: Options, on_row: Callable[[list[RowResult]], None] | None = None
) -> list[RowResult]:
    """Every optimizer's row for one task, each in its own child process; ``on_row`` sees the
    rows so far after each one."""
    task = load_task(options)
    test_size = check_split(len(task.examples), options.train, options.dev, options.test)
    print(
        f"quality: task={options.task_label} ({task.signature}, metric={task.metric_kind}) "
        f"examples={len(task.examples)} split seed={options.seed} train={options.train} "
        f"dev={options.dev} test={test_size}"
        + (f" (scored: first {options.test_limit})" if options.test_limit else "")
        + f"; model={options.model} adapter={options.adapter} "
        f"threads={options.threads} lm_threads={options.lm_threads or 'default'}; "
        f"demos={options.demos} labeled={options.labeled} "
        f"rs_candidates={options.rs_candidates}; optimizers={', '.join(options.optimizers)}",
        flush=True,
    )
    rows: list[RowResult] = []
    for number, optimizer in enumerate(options.optimizers, start=1):
        label = f"{options.task_label}/{SHORT_NAMES.get(optimizer, optimizer)}"
        say(label, f"row {number}/{len(options.optimizers)} starting in a child process")
        row = run_in_child(options, optimizer)
        rows.append(row)
        say(label, f"row {number}/{len(options.optimizers)} done: {format_row(row).strip()}")
        if on_row is not None:
            on_row(rows)
    return rows


def run_suite(options: Options) -> int:
    """Every task of the suite; the table is rewritten after each task (a partial run keeps
    what it measured)."""
    tasks = suite_options(options)
    out = Path(options.results) if options.results else RESULTS / "quality_suite.txt"
    out.parent.mkdir(parents=True, exist_ok=True)
    results: list[tuple[str, list[RowResult]]] = []

    def write(rows: list[RowResult]) -> None:
        out.write_text(format_suite_table([*results, (label, rows)]) + "\n", encoding="utf-8")

    for task_options in tasks:
        label = task_options.task_label
        results.append((label, run_task(task_options, write)))
    print()
    print(format_suite_table(results))
    print(f"\nquality suite: table written to {out}", flush=True)
    return 0 if all(row.ok for _, rows in results for row in rows) else 1


def main(argv: list[str] | None = None) -> int:
    started = time.perf_counter()
    try:
        options = parse_options(argv)
        if options.suite:
            return run_suite(options)
        rows = run_task(options)
    except (OptionsError, KeyError, ValueError, OSError) as exc:
        message = exc.args[0] if isinstance(exc, KeyError) and exc.args else exc
        print(f"quality.py: error: {message}", file=sys.stderr)
        return 2
    wall_s = time.perf_counter() - started
    print()
    print(format_table(rows))
    print()
    print(result_line(options.task_label, rows, wall_s), flush=True)
    if options.results:
        Path(options.results).write_text(format_table(rows) + "\n", encoding="utf-8")
    return 0 if all(row.ok for row in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
