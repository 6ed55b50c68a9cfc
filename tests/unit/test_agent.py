"""DSPyAgent on its own: optimizer catalog, local compile on the fake LM, save and load."""

from __future__ import annotations

import json
from pathlib import Path

import dspy
import pytest

from dspy_flywheel.compile.errors import (
    IncompatibleProgram,
    OptimizerConfigError,
    ProgramNotFound,
)
from dspy_flywheel.lm import engine_stats
from dspy_flywheel.sdk.agent import DSPyAgent, LocalExample
from tests.fixtures import fake_task

DATA = fake_task.tickets(120, seed=3)
TRAIN, VAL, HOLDOUT = DATA[:40], DATA[40:60], DATA[60:]


@pytest.fixture
def agent(tmp_path: Path) -> DSPyAgent:
    return DSPyAgent(fake_task.make_lm(), home=tmp_path)


@pytest.mark.parametrize(
    ("name", "kwargs", "cls", "auto"),
    [
        ("BootstrapFewShot", {}, dspy.BootstrapFewShot, None),
        (
            "bootstrap_rs",
            {"num_candidate_programs": 2},
            dspy.BootstrapFewShotWithRandomSearch,
            None,
        ),
        ("MIPROv2", {}, dspy.MIPROv2, "light"),
        ("MIPROv2", {"auto": "medium"}, dspy.MIPROv2, "medium"),
        ("mipROv2-heavy", {}, dspy.MIPROv2, "heavy"),
    ],
)
def test_create_optimizer_names_and_presets(
    agent: DSPyAgent, name: str, kwargs: dict[str, object], cls: type, auto: str | None
) -> None:
    optimizer = agent.create_optimizer(name, **kwargs)
    assert isinstance(optimizer.teleprompter, cls)
    if auto is not None:
        assert optimizer.teleprompter.auto == auto
        assert optimizer.params["auto"] == auto


def test_compile_kwargs_are_routed_to_compile(agent: DSPyAgent) -> None:
    optimizer = agent.create_optimizer("MIPROv2", auto=None, num_candidates=2, num_trials=3)
    assert optimizer.compile_kwargs == {"num_trials": 3}
    assert optimizer.teleprompter.num_candidates == 2


@pytest.mark.parametrize(
    ("name", "kwargs", "fragment"),
    [
        (
            "Nope",
            {},
            "unknown optimizer 'Nope'; accepted: BootstrapFewShot, "
            "BootstrapFewShotWithRandomSearch, MIPROv2",
        ),
        (
            "BootstrapFewShot",
            {"max_demos": 3},
            "BootstrapFewShot does not accept max_demos; accepted parameters: metric, "
            "metric_threshold, teacher_settings, max_bootstrapped_demos",
        ),
        ("MIPROv2", {"auto": "extreme"}, "bad parameters for MIPROv2: Invalid value for auto"),
        ("MIPROv2-light", {"auto": "heavy"}, "MIPROv2-light fixes auto='light'"),
    ],
)
def test_bad_optimizer_requests_list_what_is_accepted(
    agent: DSPyAgent, name: str, kwargs: dict[str, object], fragment: str
) -> None:
    with pytest.raises(OptimizerConfigError) as err:
        agent.create_optimizer(name, **kwargs)
    assert fragment in str(err.value)


def test_finetune_refused_when_the_lm_cannot_finetune(agent: DSPyAgent) -> None:
    with pytest.raises(OptimizerConfigError) as err:
        agent.create_optimizer("BootstrapFinetune")
    message = str(err.value)
    assert "cannot fine-tune 'fake/demo-aware'" in message
    assert "provider.finetunable is False" in message
    assert "BootstrapFewShot" in message  # names the alternatives


def test_finetune_accepted_with_a_finetunable_provider(tmp_path: Path) -> None:
    class TrainableProvider(dspy.Provider):
        def __init__(self) -> None:
            super().__init__()
            self.finetunable = True

    lm = fake_task.make_lm()
    lm.provider = TrainableProvider()
    optimizer = DSPyAgent(lm, home=tmp_path).create_optimizer("BootstrapFinetune")
    assert isinstance(optimizer.teleprompter, dspy.BootstrapFinetune)


def test_bootstrap_few_shot_improves_the_fake_task(agent: DSPyAgent) -> None:
    program = fake_task.TicketRouter()
    before = agent.evaluate(program, HOLDOUT)
    compiled = agent.compile_with_optimizer(
        program, TRAIN, agent.create_optimizer("BootstrapFewShot")
    )
    after = agent.evaluate(compiled, HOLDOUT)
    assert before.score == 0.0
    assert before.errors == 0
    assert after.score == 1.0
    assert compiled.route.demos
    assert not program.route.demos


@pytest.mark.parametrize(
    ("name", "kwargs"),
    [
        ("BootstrapFewShotWithRandomSearch", {"num_candidate_programs": 2}),
        ("MIPROv2", {}),
    ],
)
def test_search_optimizers_use_the_valset(
    agent: DSPyAgent, name: str, kwargs: dict[str, object]
) -> None:
    lm = agent.lm
    before = engine_stats(lm)
    compiled = agent.compile_with_optimizer(
        fake_task.TicketRouter(), TRAIN, agent.create_optimizer(name, **kwargs), valset=VAL
    )
    assert (engine_stats(lm) - before).calls > len(VAL)  # candidates were scored on the valset
    assert agent.evaluate(compiled, HOLDOUT).score >= 0.5


def test_training_data_shapes(agent: DSPyAgent) -> None:
    flat = [{"text": t["inputs"]["text"], "label": t["outputs"]["label"]} for t in TRAIN]
    examples = [dspy.Example(**row).with_inputs("text") for row in flat]
    local = [
        agent.collect_training_example(t["inputs"], t["outputs"], {"source": "test"}) for t in TRAIN
    ]
    assert isinstance(local[0], LocalExample)
    assert len(agent.training_examples) == len(TRAIN)
    for data in (flat, examples, local, agent.training_examples):
        compiled = agent.compile_with_optimizer(fake_task.TicketRouter(), data, "BootstrapFewShot")
        assert agent.evaluate(compiled, HOLDOUT).score == 1.0


def test_save_and_load_round_trip(agent: DSPyAgent, tmp_path: Path) -> None:
    compiled = agent.compile_with_optimizer(fake_task.TicketRouter(), TRAIN, "BootstrapFewShot")
    assert agent.save_optimized_program(compiled, "router.v1") is True
    saved = json.loads((tmp_path / "programs" / "router.v1.json").read_text())
    assert saved["class"] == "tests.fixtures.fake_task:TicketRouter"
    assert saved["signature"] == {"route": {"inputs": ["text"], "outputs": ["label"]}}

    template = fake_task.TicketRouter()
    loaded = agent.load_optimized_program("router.v1", program=template)
    assert loaded is not template
    assert not template.route.demos
    assert agent.evaluate(loaded, HOLDOUT).score == 1.0
    by_class = agent.load_optimized_program("router.v1")
    assert isinstance(by_class, fake_task.TicketRouter)
    assert by_class.dump_state() == compiled.dump_state()


def test_load_refuses_missing_and_incompatible_programs(agent: DSPyAgent) -> None:
    with pytest.raises(ProgramNotFound):
        agent.load_optimized_program("never-saved")
    with pytest.raises(ValueError, match="program_id"):
        agent.save_optimized_program(fake_task.TicketRouter(), "../escape")
    agent.save_optimized_program(fake_task.TicketRouter(), "router")
    other = dspy.Predict("text -> team")
    with pytest.raises(IncompatibleProgram):
        agent.load_optimized_program("router", program=other)
