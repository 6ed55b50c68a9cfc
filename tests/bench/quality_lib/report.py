"""The quality table and the benchmark's last line."""

from __future__ import annotations

from collections.abc import Sequence

from .options import BASELINE, SHORT_NAMES
from .row import RowResult

HEADER = (
    f"{'optimizer':<17} {'test acc':>8} {'n':>4} {'LM calls':>8} {'compile':>7} "
    f"{'eval':>5} {'tokens':>9} {'compile s':>9} {'eval s':>7} {'wall s':>7} "
    f"{'peak RSS MB':>11} {'demos':>5}"
)


def percent(score: float) -> float:
    return round(100.0 * score, 1)


def format_row(row: RowResult) -> str:
    name = SHORT_NAMES.get(row.optimizer, row.optimizer)
    if not row.ok:
        return f"{name:<17} {'FAILED':>8}  after {row.wall_s:.1f}s: {row.error}"
    return (
        f"{name:<17} {percent(row.test_score):>7.1f}% {row.test_n:>4} {row.lm_calls:>8} "
        f"{row.compile_calls:>7} {row.eval_calls:>5} {row.tokens:>9} {row.compile_s:>9.1f} "
        f"{row.eval_s:>7.1f} {row.wall_s:>7.1f} {row.peak_rss_mb:>11.0f} {row.demos:>5}"
        + _training(row)
    )


def _training(row: RowResult) -> str:
    """A fine-tuned row's trainer figures (its own child process, beside the row's RSS)."""
    if row.adapter_mb is None:
        return ""
    return (
        f"  [trainer: {row.train_s or 0:.1f}s, peak RSS {row.train_rss_mb or 0:.0f} MB; "
        f"adapter {row.adapter_mb:.2f} MB]"
    )


def format_table(rows: Sequence[RowResult]) -> str:
    lines = [HEADER, "-" * len(HEADER)]
    lines.extend(format_row(row) for row in rows)
    return "\n".join(lines)


def best_row(rows: Sequence[RowResult]) -> RowResult | None:
    """The highest test score among finished rows; on a tie the earlier (cheaper) row."""
    best: RowResult | None = None
    for row in rows:
        if row.ok and (best is None or row.test_score > best.test_score):
            best = row
    return best


def result_line(task: str, rows: Sequence[RowResult], wall_s: float) -> str:
    """``quality task=… baseline=… best=… best_optimizer=… gain_points=… wall_s=…``.

    Scores are test accuracy in percent; ``gain_points`` is best minus baseline in percentage
    points. A missing or failed row prints as ``na``.
    """
    baseline = next((r for r in rows if r.optimizer == BASELINE and r.ok), None)
    best = best_row(rows)
    base_text = f"{percent(baseline.test_score):.1f}" if baseline else "na"
    best_text = f"{percent(best.test_score):.1f}" if best else "na"
    best_name = best.optimizer if best else "na"
    gain = (
        f"{percent(best.test_score) - percent(baseline.test_score):.1f}"
        if best and baseline
        else "na"
    )
    return (
        f"quality task={task} baseline={base_text} best={best_text} "
        f"best_optimizer={best_name} gain_points={gain} wall_s={wall_s:.1f}"
    )


def format_suite_table(results: Sequence[tuple[str, Sequence[RowResult]]]) -> str:
    """One table for the whole suite: a task column before each row, a gain line per task."""
    width = max([len("task"), *(len(task) for task, _ in results)])
    lines = [f"{'task':<{width}} {HEADER}", "-" * (width + 1 + len(HEADER))]
    for task, rows in results:
        lines.extend(f"{task:<{width}} {format_row(row)}" for row in rows)
    lines.append("")
    lines.extend(result_line(task, rows, sum(r.wall_s for r in rows)) for task, rows in results)
    return "\n".join(lines)
