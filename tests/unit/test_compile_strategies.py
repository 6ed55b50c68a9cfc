"""Strategies that learn from labeled examples, on the fake LM: stratified demos cover every
class present; the retrieval index is saved with the program, loaded, and hot-reloaded."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import dspy
import pytest

from dspy_flywheel.compile.catalog import canonical_name, create_optimizer, setting_names
from dspy_flywheel.compile.compiler import compile_program, load_state_into
from dspy_flywheel.compile.errors import OptimizerConfigError
from dspy_flywheel.compile.evaluation import evaluate
from dspy_flywheel.compile.judge import exact_match
from dspy_flywheel.compile.retrieval import STATE_KEY, BM25Index
from dspy_flywheel.compile.signature import signature_of
from dspy_flywheel.compile.strategies import RetrievalFewShot, StratifiedFewShot, stratified
from dspy_flywheel.lm import make_lm
from dspy_flywheel.sdk.programs import ProgramSlot
from tests.fixtures.fake_lm import FakeEngine
from tests.fixtures.retrieval import has_retrieval
from tests.fixtures.tasks import load_jsonl_task

SUITE = Path(__file__).parents[1] / "bench" / "suite"


def _suite_task(name: str) -> Any:
    spec = json.loads((SUITE / f"{name}.json").read_text())
    return load_jsonl_task(
        SUITE / spec["data"], spec["signature"], metric=spec["metric"], name=name
    ), spec


@pytest.fixture(scope="module")
def routing() -> Any:
    task, spec = _suite_task("telecom_routing")
    split = spec["split"]
    return task, task.split(split["seed"], train=split["train"], dev=split["dev"])


class Route(dspy.Module):
    def __init__(self) -> None:
        super().__init__()
        self.predict = dspy.Predict(
            "ticket: str -> queue: Literal['billing', 'technical', 'outage', 'retention', "
            "'relocation', 'sales', 'security']"
        )

    def forward(self, ticket: str) -> dspy.Prediction:
        return self.predict(ticket=ticket)


def copy_closest(messages: list[dict[str, str]]) -> str:
    """A "model" that answers what the last demo (the closest, for retrieval) answered."""
    answers = [m["content"] for m in messages if m["role"] == "assistant"]
    return answers[-1] if answers else "[[ ## queue ## ]]\nbilling\n\n[[ ## completed ## ]]"


@pytest.fixture
def lm() -> Any:
    return make_lm(FakeEngine(copy_closest))


def test_stratified_demos_cover_every_class_before_repeating_one(routing: Any) -> None:
    _, split = routing
    present = {ex.queue for ex in split.train}
    for k in (len(present), 16):
        picked = stratified(split.train, ["queue"], k, seed=3)
        counts = Counter(ex.queue for ex in picked)
        assert set(counts) == present
        assert max(counts.values()) - min(counts.values()) <= 1
    one_security = next(ex for ex in split.train if ex.queue == "security")
    rare = [*[ex for ex in split.train if ex.queue != "security"][:40], one_security]
    assert "security" in {ex.queue for ex in stratified(rare, ["queue"], 7, seed=0)}


def test_free_text_labels_get_a_seeded_sample_not_classes() -> None:
    task, _ = _suite_task("payment_notes")
    rows = list(task.examples[:40])
    first = stratified(rows, ["due_date", "amount_eur"], 5, seed=1)
    assert len(first) == 5
    assert first == stratified(rows, ["due_date", "amount_eur"], 5, seed=1)


def test_stratified_few_shot_through_the_catalog(routing: Any) -> None:
    _, split = routing
    optimizer = create_optimizer("stratified", metric=exact_match, max_labeled_demos=14)
    program = compile_program(Route(), split.train, optimizer)
    demos = program.predict.demos
    assert len(demos) == 14
    assert {d["queue"] for d in demos} == {ex.queue for ex in split.train}
    assert not has_retrieval(program)


def test_catalog_offers_the_strategies_and_checks_their_settings() -> None:
    assert canonical_name("retrieval") == "RetrievalFewShot"
    assert canonical_name("knn") == "RetrievalFewShot"
    assert {"k", "max_labeled_demos", "seed"} <= setting_names("RetrievalFewShot")
    with pytest.raises(OptimizerConfigError, match="does not accept max_bootstrapped_demos"):
        create_optimizer("RetrievalFewShot", metric=exact_match, max_bootstrapped_demos=4)
    with pytest.raises(OptimizerConfigError, match=r"k .* at least 1"):
        create_optimizer("RetrievalFewShot", metric=exact_match, k=0)


def test_bm25_ranks_the_row_sharing_rare_words_first() -> None:
    pool = [
        {"ticket": "my bill is wrong", "queue": "billing"},
        {"ticket": "router lights orange after update", "queue": "technical"},
        {"ticket": "whole street has no internet", "queue": "outage"},
    ]
    index = BM25Index(pool, ["ticket"], k=2)
    assert index.nearest({"ticket": "orange lights on my router"})[0]["queue"] == "technical"
    assert len(index.nearest({"ticket": "no internet in the street"})) == 2
    assert BM25Index.from_state(index.to_state()).nearest({"ticket": "bill"}) == index.nearest(
        {"ticket": "bill"}
    )


def test_retrieved_demos_follow_the_input_and_beat_fixed_demos(routing: Any, lm: Any) -> None:
    _, split = routing
    stratified_program = compile_program(
        Route(), split.train, create_optimizer("StratifiedFewShot", metric=exact_match)
    )
    retrieval_program = compile_program(
        Route(), split.train, create_optimizer("RetrievalFewShot", metric=exact_match, k=4)
    )
    predictor = retrieval_program.predict
    assert len(predictor.demos) == len({ex.queue for ex in split.train})  # one per class
    with dspy.context(lm=lm):
        fixed = evaluate(stratified_program, split.test, exact_match)
        retrieved = evaluate(retrieval_program, split.test, exact_match)
    # The fake copies the last demo: the nearest training row for retrieval, one fixed class
    # otherwise. Same data, same fake: the difference is the retrieval plumbing.
    assert retrieved.score > fixed.score + 0.2
    assert retrieved.confusion is not None
    assert sum(sum(row.values()) for row in retrieved.confusion.values()) == len(split.test)


def test_index_is_saved_loaded_and_hot_reloaded_with_the_program(
    routing: Any, lm: Any, tmp_path: Path
) -> None:
    _, split = routing
    compiled = compile_program(
        Route(), split.train, create_optimizer("RetrievalFewShot", metric=exact_match, k=3)
    )
    state = compiled.dump_state()
    assert len(state["predict"][STATE_KEY]["pool"]) == len(split.train)

    path = tmp_path / "program.json"
    compiled.save(str(path))  # DSPy's own save: the index is part of the JSON
    saved = json.loads(path.read_text())
    assert saved["predict"][STATE_KEY] == json.loads(json.dumps(state["predict"][STATE_KEY]))

    loaded = load_state_into(saved, signature_of(Route()), Route())
    assert has_retrieval(loaded)
    probe = split.test[:8]
    with dspy.context(lm=lm):
        assert [loaded(**ex.inputs()).queue for ex in probe] == [
            compiled(**ex.inputs()).queue for ex in probe
        ]

    slot = ProgramSlot(Route, history_size=3)
    signature = json.dumps(signature_of(Route()))
    assert slot.offer(1, json.dumps(state), signature).status == "serving"
    served = slot.current.program
    assert has_retrieval(served)
    assert served is not compiled
    with dspy.context(lm=lm):
        assert served(**probe[0].inputs()).queue == compiled(**probe[0].inputs()).queue

    plain = compile_program(Route(), split.train, stratified_optimizer())
    assert slot.offer(2, json.dumps(plain.dump_state()), signature).status == "serving"
    assert not has_retrieval(slot.current.program)  # the next version has no index
    assert slot.rollback().version == 1
    assert has_retrieval(slot.current.program)


def test_a_corrupt_index_is_refused_by_the_reloader(routing: Any) -> None:
    from dspy_flywheel.sdk import CorruptProgram

    _, split = routing
    state = RetrievalFewShot(k=2).compile(Route(), trainset=split.train).dump_state()
    state["predict"][STATE_KEY]["kind"] = "vectors"
    slot = ProgramSlot(Route, history_size=2)
    with pytest.raises(CorruptProgram, match="bm25"):
        slot.offer(1, json.dumps(state), json.dumps(signature_of(Route())))


def stratified_optimizer() -> Any:
    return create_optimizer("StratifiedFewShot", metric=exact_match, max_labeled_demos=7)


def test_stratified_compile_ignores_rows_missing_a_field() -> None:
    rows = [
        dspy.Example(ticket="a", queue="billing").with_inputs("ticket"),
        dspy.Example(ticket="b").with_inputs("ticket"),
    ]
    program = StratifiedFewShot(max_labeled_demos=4).compile(Route(), trainset=rows)
    assert program.predict.demos == [{"ticket": "a", "queue": "billing"}]


def test_confusion_per_class_and_the_job_report() -> None:
    from dspy_flywheel.compile.confusion import FAILED, confusion, job_report

    examples = [
        dspy.Example(ticket=str(i), queue=q).with_inputs("ticket")
        for i, q in enumerate(["billing", "billing", "outage", "outage", "sales", "sales"])
    ]
    before = confusion(examples, [dspy.Prediction(queue="Billing.")] * 5 + [None])
    assert before == {
        "billing": {"billing": 2},
        "outage": {"billing": 2},
        "sales": {"billing": 1, FAILED: 1},
    }
    after = confusion(examples, [dspy.Prediction(queue=e.queue) for e in examples])
    report = job_report(before, after)
    assert report["per_class"]["outage"] == {"n": 2, "recall_before": 0.0, "recall_after": 1.0}
    assert report["confusion"]["after"]["sales"] == {"sales": 2}
    assert job_report(None, None) == {}
    free_text = [
        dspy.Example(note=str(i), due=f"2025-01-{i:02d}").with_inputs("note") for i in range(1, 9)
    ]
    assert confusion(free_text, [None] * 8) is None  # every label distinct: not a class


@pytest.mark.parametrize(
    ("valset", "given", "expected"),
    [
        (20, {}, 10),  # half the valset: a trial scores 10, full evaluations all 20
        (69, {}, 34),
        (70, {}, None),  # DSPy's own default (35) fits
        (20, {"minibatch_size": 4}, 4),  # the caller's choice stays
        (20, {"minibatch": False}, None),
    ],
)
def test_mipro_minibatch_is_half_a_small_valset(
    valset: int, given: dict[str, Any], expected: int | None
) -> None:
    from dspy_flywheel.compile.compiler import _fit_minibatch

    kwargs: dict[str, Any] = {"valset": list(range(valset)), **given}
    _fit_minibatch(kwargs, trainset=list(range(100)))
    assert kwargs.get("minibatch_size") == expected
