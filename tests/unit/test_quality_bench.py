"""tests/bench/quality.py without an LM: command line, split check, table and result line."""

from __future__ import annotations

import re
from typing import Any

import pytest

from tests.bench.quality_lib.options import (
    ALL_OPTIMIZERS,
    BASELINE,
    BOOTSTRAP,
    MIPRO,
    RANDOM_SEARCH,
    OptionsError,
    check_split,
    optimizer_kwargs,
    parse_optimizers,
    parse_options,
)
from tests.bench.quality_lib.report import best_row, format_table, result_line
from tests.bench.quality_lib.row import RowResult

RESULT_LINE = re.compile(
    r"^quality task=(\S+) baseline=(\S+) best=(\S+) best_optimizer=(\S+) "
    r"gain_points=(\S+) wall_s=(\S+)$"
)


def _row(optimizer: str, score: float, *, ok: bool = True) -> RowResult:
    return RowResult(
        optimizer=optimizer,
        ok=ok,
        test_score=score,
        test_n=50,
        compile_calls=7,
        eval_calls=50,
        tokens=12345,
        compile_s=12.0,
        eval_s=30.0,
        wall_s=45.5,
        peak_rss_mb=2048.0,
        demos=4,
        error="" if ok else "boom",
    )


def test_builtin_task_defaults_run_all_four_optimizers() -> None:
    options = parse_options(["--task", "classification"])
    assert options.task == "classification"
    assert options.optimizers == ALL_OPTIMIZERS
    assert (options.model, options.adapter, options.metric) == ("qwen1.5b", "chat", "exact")
    assert options.task_label == "classification"


def test_dataset_needs_a_signature() -> None:
    with pytest.raises(OptionsError, match="--signature"):
        parse_options(["--dataset", "qa.jsonl"])
    options = parse_options(
        [
            "--dataset",
            "/data/qa.jsonl",
            "--signature",
            "context, q -> a",
            "--metric",
            "f1",
            "--seed",
            "3",
            "--train",
            "10",
            "--dev",
            "5",
        ]
    )
    assert (options.signature, options.metric, options.seed) == ("context, q -> a", "f1", 3)
    assert (options.train, options.dev) == (10, 5)
    assert options.task_label == "qa"


def test_task_and_dataset_are_exclusive() -> None:
    with pytest.raises(SystemExit):
        parse_options(["--task", "classification", "--dataset", "x.jsonl"])
    with pytest.raises(OptionsError, match="--signature goes with --dataset"):
        parse_options(["--task", "classification", "--signature", "a -> b"])


def test_adapter_and_model_choices() -> None:
    options = parse_options(
        [
            "--task",
            "reasoning",
            "--adapter",
            "json",
            "--model",
            "smollm2",
            "--threads",
            "2",
            "--lm-threads",
            "1",
        ]
    )
    assert (options.adapter, options.model, options.threads, options.lm_threads) == (
        "json",
        "smollm2",
        2,
        1,
    )
    with pytest.raises(SystemExit):
        parse_options(["--task", "reasoning", "--adapter", "xml"])
    with pytest.raises(OptionsError, match="at least 1"):
        parse_options(["--task", "reasoning", "--threads", "0"])


def test_optimizer_names_accept_aliases_in_order_without_repeats() -> None:
    assert parse_optimizers("mipro, baseline,bootstraprs,MIPROv2") == (
        MIPRO,
        BASELINE,
        RANDOM_SEARCH,
    )
    assert parse_optimizers("BootstrapFewShot") == (BOOTSTRAP,)
    assert parse_optimizers("all") == ALL_OPTIMIZERS
    with pytest.raises(OptionsError, match="unknown optimizer 'copro'"):
        parse_optimizers("baseline,copro")
    with pytest.raises(OptionsError, match="no optimizer"):
        parse_optimizers(" , ")


def test_split_takes_the_rest_as_test_and_refuses_under_fifty() -> None:
    assert check_split(168, 98, 20) == 50
    assert check_split(200, 20, 20) == 160
    with pytest.raises(OptionsError, match=r"test split would hold 49 .* at least 50") as info:
        check_split(168, 99, 20)
    assert "at most 118" in str(info.value)
    with pytest.raises(OptionsError, match="at least 1"):
        check_split(168, 0, 20)


def test_budget_kwargs_per_optimizer() -> None:
    options = parse_options(
        [
            "--task",
            "classification",
            "--demos",
            "3",
            "--labeled",
            "2",
            "--rs-candidates",
            "5",
            "--threads",
            "2",
        ]
    )
    assert optimizer_kwargs(BOOTSTRAP, options) == {
        "max_bootstrapped_demos": 3,
        "max_labeled_demos": 2,
    }
    random_search = optimizer_kwargs(RANDOM_SEARCH, options)
    assert random_search["num_candidate_programs"] == 5
    assert random_search["num_threads"] == 2
    mipro = optimizer_kwargs(MIPRO, options)
    assert mipro["auto"] == "light"
    assert mipro["program_aware_proposer"] is False
    assert mipro["data_aware_proposer"] is False
    with pytest.raises(OptionsError):
        optimizer_kwargs(BASELINE, options)


def test_result_line_reports_best_gain_in_points() -> None:
    rows = [
        _row(BASELINE, 0.24),
        _row(BOOTSTRAP, 0.80),
        _row(RANDOM_SEARCH, 0.86),
        _row(MIPRO, 0.86),
    ]
    line = result_line("classification", rows, 1234.56)
    match = RESULT_LINE.match(line)
    assert match is not None, line
    assert match.groups() == (
        "classification",
        "24.0",
        "86.0",
        "BootstrapFewShotWithRandomSearch",
        "62.0",
        "1234.6",
    )


def test_result_line_when_rows_failed_or_baseline_is_best() -> None:
    rows = [_row(BASELINE, 0.5), _row(BOOTSTRAP, 0.4), _row(MIPRO, 0.9, ok=False)]
    best = best_row(rows)
    assert best is not None
    assert best.optimizer == BASELINE
    line = result_line("t", rows, 1.0)
    assert line.endswith("best_optimizer=baseline gain_points=0.0 wall_s=1.0")
    failed = result_line("t", [_row(BASELINE, 0.5, ok=False)], 2.0)
    assert failed == (
        "quality task=t baseline=na best=na best_optimizer=na gain_points=na wall_s=2.0"
    )


def test_table_has_one_line_per_row_and_marks_failures() -> None:
    table = format_table([_row(BASELINE, 0.24), _row(MIPRO, 0.0, ok=False)])
    lines = table.splitlines()
    assert len(lines) == 4
    assert "test acc" in lines[0]
    assert "peak RSS MB" in lines[0]
    assert lines[2].split()[:4] == ["baseline", "24.0%", "50", "57"]
    assert "MIPROv2-light" in lines[3]
    assert "FAILED" in lines[3]
    assert "boom" in lines[3]


@pytest.fixture(scope="module")
def fake_rows() -> dict[str, RowResult]:
    """Every row on a fake engine that knows the label only when a demo shows it."""
    from dspy_flywheel.lm import make_lm
    from tests.bench.quality_lib.row import measure_row
    from tests.fixtures.fake_lm import FakeEngine, demo_count, input_fields
    from tests.fixtures.tasks import get_task

    gold = {example.ticket: example.label for example in get_task("classification").examples}

    def responder(messages: list[dict[str, str]]) -> dict[str, str]:
        ticket = input_fields(messages).get("ticket")
        if ticket is None:  # MIPROv2's instruction proposer and friends
            return {
                "proposed_instruction": "Route the ticket.",
                "observations": "Tickets.",
                "summary": "Support tickets.",
                "program_description": "Routes tickets.",
                "module_description": "Routes tickets.",
            }
        return {"label": gold.get(ticket, "unknown") if demo_count(messages) else "support"}

    engine = FakeEngine(responder)
    options = parse_options(
        ["--task", "classification", "--train", "24", "--dev", "10", "--heartbeat-s", "0"]
    )
    return {
        name: measure_row(options, name, make_lm=lambda: make_lm(engine)) for name in ALL_OPTIMIZERS
    }


def test_every_row_runs_through_the_agent_on_a_fake_engine(
    fake_rows: dict[str, RowResult],
) -> None:
    baseline = fake_rows[BASELINE]
    assert baseline.ok
    assert (baseline.test_score, baseline.test_n, baseline.compile_calls) == (0.0, 134, 0)
    assert baseline.eval_calls == 134
    for name in (BOOTSTRAP, RANDOM_SEARCH, MIPRO):
        row = fake_rows[name]
        assert row.ok, row.error
        assert row.test_n == 134
        assert row.demos > 0, name
        assert row.test_score == 1.0, name
        assert row.compile_calls > 0
        assert row.eval_calls == 134
        assert row.tokens > 0
    # The searches evaluate candidates on dev, so they cost more calls than one bootstrap.
    assert fake_rows[RANDOM_SEARCH].compile_calls > fake_rows[BOOTSTRAP].compile_calls
    assert fake_rows[MIPRO].compile_calls > fake_rows[BOOTSTRAP].compile_calls


# --- the suite: typed signatures, task definitions, the strategies' rows -----------------

SUITE_DIR = "tests/bench/suite"


def test_suite_reads_every_definition_with_its_fixed_split() -> None:
    from tests.bench.quality_lib.suite import suite_options

    tasks = {t.task_label: t for t in suite_options(parse_options(["--suite", SUITE_DIR]))}
    assert set(tasks) == {
        "listing_moderation",
        "payment_notes",
        "policy_qa",
        "reservations",
        "telecom_routing",
    }
    for options in tasks.values():
        assert (options.train, options.dev, options.test) == (98, 12, 50)
    assert tasks["policy_qa"].metric == "f1"
    only = suite_options(parse_options(["--suite", SUITE_DIR, "--only", "policy_qa"]))
    assert [t.task_label for t in only] == ["policy_qa"]
    with pytest.raises(OptionsError, match="unknown task"):
        suite_options(parse_options(["--suite", SUITE_DIR, "--only", "nope"]))


def test_every_suite_task_names_its_label_set_and_has_150_rows() -> None:
    import typing

    from tests.bench.quality_lib.row import load_task
    from tests.bench.quality_lib.suite import suite_options

    for options in suite_options(parse_options(["--suite", SUITE_DIR])):
        task = load_task(options)
        assert len(task.examples) >= 150, options.task_label
        assert len({tuple(ex.inputs().values()) for ex in task.examples}) == len(task.examples)
        for name, field in task.dspy_signature().output_fields.items():
            if typing.get_origin(field.annotation) is typing.Literal:
                labels = set(typing.get_args(field.annotation))
                assert len(labels) >= 6
                assert {ex[name] for ex in task.examples} == labels, options.task_label


def test_typed_signature_instructions_and_metric_reference(tmp_path: Any) -> None:
    from tests.bench.quality_lib.row import load_task

    data = tmp_path / "t.jsonl"
    data.write_text('{"text": "a", "label": "x"}\n' * 3)
    options = parse_options(
        [
            "--dataset",
            str(data),
            "--signature",
            "text: str -> label: Literal['x', 'y']",
            "--instructions",
            "Pick x or y.",
            "--metric",
            "dspy_flywheel.compile.judge:exact_match",
        ]
    )
    task = load_task(options)
    assert task.input_fields == ("text",)
    assert task.output_fields == ("label",)
    assert task.dspy_signature().instructions == "Pick x or y."
    from dspy_flywheel.compile.judge import exact_match

    assert task.metric is exact_match
    with pytest.raises(OptionsError, match="--metric"):
        parse_options(["--dataset", str(data), "--signature", "a -> b", "--metric", "bleu"])
    with pytest.raises(OptionsError, match="goes with --dataset"):
        parse_options(["--task", "classification", "--instructions", "x"])


def test_suite_table_has_a_task_column_and_a_line_per_task() -> None:
    from tests.bench.quality_lib.report import format_suite_table

    table = format_suite_table(
        [("telecom_routing", [_row(BASELINE, 0.3), _row("RetrievalFewShot", 0.62)])]
    )
    assert table.splitlines()[2].startswith("telecom_routing baseline")
    assert "Retrieval" in table.splitlines()[3]
    assert "quality task=telecom_routing baseline=30.0 best=62.0" in table
    assert "gain_points=32.0" in table
