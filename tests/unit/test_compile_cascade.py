"""RetrievalCascade on the fake LM: the label model answers the calls it is sure of with no LM
call, the LM the rest; the model is saved with the program, loaded and hot-reloaded."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import dspy
import pytest

from dspy_flywheel.compile.cascade import STATE_KEY, CascadeMixin
from dspy_flywheel.compile.catalog import create_optimizer
from dspy_flywheel.compile.compiler import compile_program, load_state_into
from dspy_flywheel.compile.judge import exact_match
from dspy_flywheel.compile.label_model import LabelModel
from dspy_flywheel.compile.mixins import attach, mix_in
from dspy_flywheel.compile.retrieval import BM25Index, RetrievingMixin
from dspy_flywheel.compile.signature import signature_of
from dspy_flywheel.compile.strategies import RetrievalCascade, RetrievalFewShot
from dspy_flywheel.lm import engine_stats, make_lm
from dspy_flywheel.sdk.programs import ProgramSlot
from tests.fixtures.fake_lm import FakeEngine
from tests.fixtures.retrieval import has_retrieval
from tests.fixtures.tasks import load_jsonl_task

SUITE = Path(__file__).parents[1] / "bench" / "suite"
QUEUES = "'billing', 'technical', 'outage', 'retention', 'relocation', 'sales', 'security'"
LM_ANSWER = "retention"  # what the fake LM always says: a call it answered is told apart


@pytest.fixture(scope="module")
def routing() -> Any:
    spec = json.loads((SUITE / "telecom_routing.json").read_text())
    task = load_jsonl_task(SUITE / spec["data"], spec["signature"], metric="exact")
    split = spec["split"]
    return task.split(split["seed"], train=split["train"], dev=split["dev"])


class Route(dspy.Module):
    def __init__(self) -> None:
        super().__init__()
        self.predict = dspy.Predict(f"ticket: str -> queue: Literal[{QUEUES}]")

    def forward(self, ticket: str) -> dspy.Prediction:
        return self.predict(ticket=ticket)


class RouteWithReasoning(Route):
    def __init__(self) -> None:
        super().__init__()
        self.predict = dspy.ChainOfThought(f"ticket: str -> queue: Literal[{QUEUES}]")


@pytest.fixture
def engine() -> FakeEngine:
    return FakeEngine(
        lambda _messages: (
            f"[[ ## reasoning ## ]]\nx\n\n[[ ## queue ## ]]\n{LM_ANSWER}\n\n[[ ## completed ## ]]"
        )
    )


def _rows(split: Any) -> tuple[list[dict[str, Any]], list[str]]:
    return [{"ticket": ex.ticket} for ex in split.train], [ex.queue for ex in split.train]


def test_label_model_learns_the_training_rows_and_round_trips(routing: Any) -> None:
    rows, labels = _rows(routing)
    model = LabelModel.fit(rows, ["ticket"], labels)
    right = sum(model.top(row)[0] == label for row, label in zip(rows, labels, strict=True))
    assert right / len(rows) > 0.95
    held_out = sum(model.top({"ticket": ex.ticket})[0] == ex.queue for ex in routing.test)
    assert held_out / len(routing.test) > 1 / 7 + 0.2  # well above one class in seven
    loaded = LabelModel.from_state(json.loads(json.dumps(model.to_state())))
    for ex in routing.test[:10]:
        assert loaded.top({"ticket": ex.ticket})[0] == model.top({"ticket": ex.ticket})[0]
        assert loaded.top({"ticket": ex.ticket})[1] == pytest.approx(
            model.top({"ticket": ex.ticket})[1], abs=1e-4
        )
    with pytest.raises(ValueError, match="not a label model"):
        LabelModel.from_state({**model.to_state(), "kind": "svm"})
    with pytest.raises(ValueError, match="unknown feature set"):
        LabelModel.from_state({**model.to_state(), "feature_set": "bigrams"})


def test_the_feature_set_is_chosen_by_cross_validation_and_saved(routing: Any) -> None:
    from dspy_flywheel.compile.label_model import FEATURE_SETS, _cv_accuracy

    rows, labels = _rows(routing)
    scores = {name: _cv_accuracy(rows, ["ticket"], labels, name) for name in FEATURE_SETS}
    assert all(0.3 < score < 1.0 for score in scores.values())  # held-out rows, not memorized
    model = LabelModel.fit_best(rows, ["ticket"], labels)
    assert scores[model.feature_set] == max(scores.values())
    words_only = LabelModel.fit(rows, ["ticket"], labels, feature_set="words")
    assert all(name.startswith("w:") for name in words_only.vocabulary)
    state = json.loads(json.dumps(words_only.to_state()))
    assert LabelModel.from_state(state).feature_set == "words"


def test_confident_calls_skip_the_lm_and_the_rest_reach_it(routing: Any, engine: Any) -> None:
    lm = make_lm(engine)
    optimizer = create_optimizer("RetrievalCascade", metric=exact_match, k=2, threshold=0.5)
    program = compile_program(Route(), routing.train, optimizer)
    cascade = program.predict.cascade
    assert isinstance(program.predict, CascadeMixin)
    assert has_retrieval(program)
    sure = [ex for ex in routing.test if cascade.model.top({"ticket": ex.ticket})[1] >= 0.5]
    assert 0 < len(sure) < len(routing.test)
    with dspy.context(lm=lm):
        answers = [program(ticket=ex.ticket).queue for ex in routing.test]
    assert engine_stats(lm).calls == len(routing.test) - len(sure)
    for ex, answer in zip(routing.test, answers, strict=True):
        model_label, probability = cascade.model.top({"ticket": ex.ticket})
        assert answer == (model_label[0] if probability >= 0.5 else LM_ANSWER)
    assert {a for a in answers} <= {q.strip("' ") for q in QUEUES.split(",")}


def test_reasoning_is_filled_and_threshold_one_always_asks_the_lm(
    routing: Any, engine: Any
) -> None:
    lm = make_lm(engine)
    program = RetrievalCascade(k=1, threshold=0.3).compile(
        RouteWithReasoning(), trainset=routing.train
    )
    with dspy.context(lm=lm):
        answered = [program(ticket=ex.ticket) for ex in routing.test[:20]]
    assert all(p.reasoning for p in answered)
    assert engine_stats(lm).calls < 20
    strict = RetrievalCascade(k=1, threshold=1.0).compile(Route(), trainset=routing.train)
    before = engine_stats(lm).calls
    with dspy.context(lm=lm):
        assert {strict(ticket=ex.ticket).queue for ex in routing.test[:5]} == {LM_ANSWER}
    assert engine_stats(lm).calls - before == 5
    with pytest.raises(ValueError, match="threshold"):
        RetrievalCascade(threshold=0.0)


def test_too_few_rows_per_class_get_no_cascade(routing: Any) -> None:
    few = routing.train[:40]  # 7 classes: fewer than 10 rows per class on average
    assert not isinstance(RetrievalCascade().compile(Route(), trainset=few).predict, CascadeMixin)
    program = RetrievalCascade(rows_per_class=5).compile(Route(), trainset=few)
    assert isinstance(program.predict, CascadeMixin)
    with pytest.raises(ValueError, match="rows_per_class"):
        RetrievalCascade(rows_per_class=0)


def test_free_text_outputs_get_no_cascade() -> None:
    rows = [
        dspy.Example(question=f"q{i}", answer=f"answer number {i}").with_inputs("question")
        for i in range(30)
    ]
    program = RetrievalCascade().compile(dspy.Predict("question -> answer"), trainset=rows)
    assert not isinstance(program, CascadeMixin)
    assert STATE_KEY not in program.dump_state()


def test_cascade_is_saved_loaded_and_hot_reloaded(routing: Any, engine: Any) -> None:
    compiled = RetrievalCascade(k=2).compile(Route(), trainset=routing.train)
    state = json.loads(json.dumps(compiled.dump_state()))  # what the registry stores
    assert state["predict"][STATE_KEY]["threshold"] == 0.5
    loaded = load_state_into(state, signature_of(Route()), Route())
    assert isinstance(loaded.predict, CascadeMixin)
    assert has_retrieval(loaded)
    lm = make_lm(engine)
    probe = routing.test[:12]
    with dspy.context(lm=lm):
        expected = [compiled(ticket=ex.ticket).queue for ex in probe]
        assert [loaded(ticket=ex.ticket).queue for ex in probe] == expected

    slot = ProgramSlot(Route, history_size=3)
    signature = json.dumps(signature_of(Route()))
    assert slot.offer(1, json.dumps(state), signature).status == "serving"
    with dspy.context(lm=lm):
        assert [slot.current.program(ticket=ex.ticket).queue for ex in probe] == expected
    plain = compile_program(
        Route(), routing.train, create_optimizer("RetrievalFewShot", metric=exact_match)
    )
    assert slot.offer(2, json.dumps(plain.dump_state()), signature).status == "serving"
    assert getattr(slot.current.program.predict, "cascade", None) is None  # cleared
    assert slot.rollback().version == 1
    assert slot.current.program.predict.cascade is not None


def test_a_corrupt_cascade_is_refused_by_the_reloader(routing: Any) -> None:
    from dspy_flywheel.sdk import CorruptProgram

    state = RetrievalCascade(k=1).compile(Route(), trainset=routing.train).dump_state()
    state["predict"][STATE_KEY]["model"]["kind"] = "svm"
    slot = ProgramSlot(Route, history_size=2)
    with pytest.raises(CorruptProgram, match="label model"):
        slot.offer(1, json.dumps(state), json.dumps(signature_of(Route())))


def test_the_cascade_answers_first_whichever_extra_was_attached_first(
    routing: Any, engine: Any
) -> None:
    compiled = RetrievalCascade(k=2).compile(Route(), trainset=routing.train)
    predictor = dspy.Predict(f"ticket: str -> queue: Literal[{QUEUES}]")
    attach(predictor, CascadeMixin, compiled.predict.cascade)  # the cascade first, then the index
    attach(predictor, RetrievingMixin, compiled.predict.retrieval)
    sure = next(ex for ex in routing.test if compiled.predict.cascade.answer({"ticket": ex.ticket}))
    lm = make_lm(engine)
    with dspy.context(lm=lm):
        answer = predictor(ticket=sure.ticket).queue
    assert engine_stats(lm).calls == 0
    assert answer == compiled.predict.cascade.answer({"ticket": sure.ticket})["queue"]


def test_a_predictor_saves_and_loads_every_extra_mixed_into_it(routing: Any) -> None:
    compiled = RetrievalCascade(k=2).compile(Route(), trainset=routing.train)
    state = compiled.predict.dump_state()
    assert {STATE_KEY, RetrievingMixin.key} <= state.keys()
    fresh = dspy.Predict(f"ticket: str -> queue: Literal[{QUEUES}]")
    attach(fresh, RetrievingMixin, BM25Index([], ["ticket"]))  # both mixed in, other contents
    mix_in(fresh, CascadeMixin)
    saved = json.loads(json.dumps(state))
    fresh.load_state(saved)
    assert json.loads(json.dumps(fresh.dump_state())) == saved
    assert fresh.cascade.answer({"ticket": routing.test[0].ticket}) == (
        compiled.predict.cascade.answer({"ticket": routing.test[0].ticket})
    )
    fresh.load_state(dspy.Predict(f"ticket: str -> queue: Literal[{QUEUES}]").dump_state())
    assert fresh.retrieval is None  # a state without the extras clears them
    assert fresh.cascade is None
    saved["retrieval"]["input_fields"] = ["subject"]  # a field this signature lacks
    with pytest.raises(ValueError, match="not the signature's inputs"):
        fresh.load_state(saved)


def _mutated(state: dict[str, Any], change: Any) -> dict[str, Any]:
    state = json.loads(json.dumps(state))
    change(state["predict"])
    return state


def _set(path: str, value: Any) -> Any:
    """A change that sets ``state[a][b]...`` (dotted ``path`` in a predictor's entry)."""

    def change(entry: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        for key in parents:
            entry = entry[key]
        entry[last] = value(entry[last]) if callable(value) else value

    return change


@pytest.mark.parametrize(
    ("change", "why"),
    [
        (_set("cascade.fields", "queue"), "list of field names"),
        (_set("cascade.model.classes", lambda cs: [c[0] for c in cs]), "one value per field"),
        (_set("cascade.model.bias", lambda b: [float("nan")] * len(b)), "finite"),
        (_set("cascade.model.weights", lambda w: [[1e308] * len(w[0])] * len(w)), "finite"),
        (_set("cascade.model.idf", [1.0]), "idf and vocabulary"),
        (_set("cascade.fields", ["bogus"]), "not the signature's"),
        (_set("cascade.model.input_fields", ["ticket", "other"]), "not the signature's"),
        (_set("cascade.model.classes", lambda cs: [["HACKED"]] * len(cs)), "not allowed"),
        (_set("retrieval.k1", -1.0), "k1 > 0"),
        (_set("retrieval.input_fields", [["ticket"]]), "field names"),
        (_set("retrieval.input_fields", ["nope"]), "not the signature's inputs"),
    ],
)
def test_a_published_state_that_cannot_serve_is_refused_and_the_old_one_kept(
    routing: Any, change: Any, why: str
) -> None:
    from dspy_flywheel.sdk import CorruptProgram

    good = RetrievalCascade(k=1).compile(Route(), trainset=routing.train).dump_state()
    slot = ProgramSlot(Route, history_size=2)
    signature = json.dumps(signature_of(Route()))
    assert slot.offer(1, json.dumps(good), signature).status == "serving"
    with pytest.raises(CorruptProgram, match=why):
        slot.offer(2, json.dumps(_mutated(good, change)), signature)
    assert slot.current.version == 1


def test_training_leaves_the_cascade_out_where_it_cannot_learn(routing: Any) -> None:
    no_words = [
        dspy.Example(ticket="🙂 !!", queue=ex.queue).with_inputs("ticket") for ex in routing.train
    ]
    assert not isinstance(
        RetrievalCascade().compile(Route(), trainset=no_words).predict, CascadeMixin
    )

    class Tags(dspy.Module):
        def __init__(self) -> None:
            super().__init__()
            self.predict = dspy.Predict("ticket: str -> tags: list[str]")

    listed = [
        dspy.Example(ticket=ex.ticket, tags=[ex.queue]).with_inputs("ticket")
        for ex in routing.train
    ]
    assert not _has_cascade(RetrievalCascade().compile(Tags(), trainset=listed))


def test_labels_are_answered_as_the_literal_spells_them(routing: Any) -> None:
    shouted = [
        dspy.Example(ticket=ex.ticket, queue=f"{ex.queue.upper()} ").with_inputs("ticket")
        for ex in routing.train
    ]
    program = RetrievalCascade().compile(Route(), trainset=shouted)
    assert {c[0] for c in program.predict.cascade.model.classes} <= set(
        QUEUES.replace("'", "").split(", ")
    )


def test_a_label_sent_as_a_number_is_answered_as_text_on_a_str_field(routing: Any) -> None:
    class Numbered(dspy.Module):
        def __init__(self) -> None:
            super().__init__()
            self.predict = dspy.Predict("ticket: str -> queue: str")

        def forward(self, ticket: str) -> dspy.Prediction:
            return self.predict(ticket=ticket)

    names = sorted({ex.queue for ex in routing.train})
    numbered = [
        dspy.Example(ticket=ex.ticket, queue=names.index(ex.queue)).with_inputs("ticket")
        for ex in routing.train
    ]
    program = RetrievalCascade().compile(Numbered(), trainset=numbered)
    cascade = program.predict.cascade
    assert {c[0] for c in cascade.model.classes} == {str(i) for i in range(len(names))}
    answered = [cascade.answer({"ticket": ex.ticket}) for ex in routing.test]
    assert any(answered)
    assert all(isinstance(a["queue"], str) for a in answered if a)


def test_a_long_input_is_read_up_to_its_first_max_chars(routing: Any) -> None:
    from dspy_flywheel.compile.label_model import MAX_CHARS

    model = RetrievalCascade().compile(Route(), trainset=routing.train).predict.cascade.model
    head = routing.test[0].ticket + " "
    long = (head * (MAX_CHARS // len(head) + 1))[:MAX_CHARS] + "我" * 1_000_000
    assert model.probabilities({"ticket": long}) == pytest.approx(
        model.probabilities({"ticket": long[:MAX_CHARS]})
    )


def test_fitting_stays_within_its_budget_or_says_it_cannot(
    routing: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from dspy_flywheel.compile import label_model

    rows, labels = _rows(routing)
    monkeypatch.setattr(label_model, "MAX_ENTRIES", 40 * 60)  # ~40 rows of ~60 features
    fitted: list[int] = []
    fit = label_model.LabelModel.fit.__func__  # type: ignore[attr-defined]

    def counting(cls: Any, rows: Any, *args: Any, **kwargs: Any) -> Any:
        fitted.append(len(rows))
        return fit(cls, rows, *args, **kwargs)

    monkeypatch.setattr(label_model.LabelModel, "fit", classmethod(counting))
    LabelModel.fit_best(rows, ["ticket"], labels)
    assert max(fitted) < len(rows) / 2  # the final fit and the folds took a sample
    with pytest.raises(label_model.TooCostly, match="below the 98 needed"):
        LabelModel.fit_best(rows, ["ticket"], labels, min_rows=98)
    assert not _has_cascade(RetrievalCascade().compile(Route(), trainset=routing.train))


def _has_cascade(program: Any) -> bool:
    return isinstance(program.predict, CascadeMixin) and program.predict.cascade is not None


def test_a_compiled_version_fits_one_bus_message_however_long_its_rows(routing: Any) -> None:
    import random

    from dspy_flywheel.compile.label_model import MAX_STATE_FLOATS
    from dspy_flywheel.compile.retrieval import POOL_MAX_BYTES, bounded_pool

    rows, labels = _rows(routing)
    capped = LabelModel.fit_best(rows, ["ticket"], labels, state_floats=800)
    assert len(capped.vocabulary) <= 800 // 8  # a weight per class and an idf per feature
    worst = LabelModel(  # the largest model the cap allows, 7 classes, 20-character features
        ["ticket"],
        [f"c:{i:018d}" for i in range(MAX_STATE_FLOATS // 8)],
        [1.234567] * (MAX_STATE_FLOATS // 8),
        [[-0.123456] * 7] * (MAX_STATE_FLOATS // 8),
        [0.5] * 7,
        [(q,) for q in QUEUES.replace("'", "").split(", ")],
    )
    rng = random.Random(0)
    long_rows = [
        dspy.Example(ticket="x" * 3000 + str(rng.random()), queue=ex.queue).with_inputs("ticket")
        for ex in routing.train
    ]  # ~300 KB of rows: the pool keeps them; then 4x as many: sampled
    assert len(RetrievalFewShot().compile(Route(), trainset=long_rows).predict.retrieval.pool) == 98
    pool = RetrievalFewShot().compile(Route(), trainset=long_rows * 4).predict.retrieval.pool
    assert len(json.dumps(pool)) <= POOL_MAX_BYTES + 2 * len(pool)
    assert len(json.dumps(pool)) + len(json.dumps(worst.to_state())) < 1_000_000  # Kafka's limit
    small = [{"t": str(i) * 50} for i in range(100)]
    assert bounded_pool(small, 10**9) == small
    kept = bounded_pool(small, 2_000)
    assert kept == [row for row in small if row in kept]  # in their order
