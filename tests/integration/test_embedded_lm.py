"""The in-process embedded llama.cpp engine with the small model (SmolLM2-135M) through real
DSPy modules.

Needs the weights: ``ops/model.sh fetch --small`` (CI fetches them). No Kafka or PostgreSQL.
"""

from __future__ import annotations

import asyncio
import threading
from typing import Literal

import dspy
import pytest

from dspy_flywheel.lm import (
    EmbeddedConfig,
    EmbeddedEngine,
    LMSettings,
    ModelNotFoundError,
    build_lm,
    engine_stats,
    load_engine,
    make_lm,
)

pytestmark = pytest.mark.realllm

# The in-process engine (the fallback); the shared server has tests/integration/test_lm_server.py.
SETTINGS = LMSettings(model="smollm2", threads=2, ctx=2048, max_tokens=96, server="inprocess")
LABELS = ("billing", "technical", "account", "shipping")


@pytest.fixture(scope="module")
def lm() -> dspy.LM:
    try:
        return build_lm(SETTINGS)
    except ModelNotFoundError as exc:
        pytest.skip(f"small model not installed ({exc})")


class Route(dspy.Signature):
    """Route the customer support ticket to a team."""

    ticket: str = dspy.InputField()
    label: Literal["billing", "technical", "account", "shipping"] = dspy.OutputField()


def test_json_adapter_output_is_held_to_the_schema(lm: dspy.LM) -> None:
    before = engine_stats(lm)
    with dspy.context(lm=lm, adapter=dspy.JSONAdapter()):
        prediction = dspy.Predict(Route)(ticket="I was charged twice for my order.")
    assert prediction.label in LABELS  # an enum in the grammar: no other text can come out
    spent = engine_stats(lm) - before
    assert spent.calls == 1
    assert spent.errors == 0
    assert spent.prompt_tokens > 50
    assert 0 < spent.completion_tokens < 40


def test_chat_adapter_returns_a_parsed_prediction(lm: dspy.LM) -> None:
    before = engine_stats(lm)
    with dspy.context(lm=lm, adapter=dspy.ChatAdapter()):
        prediction = dspy.Predict("question -> answer")(question="What is the capital of France?")
    # ChatAdapter falls back to JSONAdapter when the small model breaks the [[ ## ]] format.
    assert isinstance(prediction.answer, str)
    assert prediction.answer.strip()
    spent = engine_stats(lm) - before
    assert spent.calls >= 1
    assert spent.prompt_tokens > 0
    assert spent.completion_tokens > 0


def test_temperature_zero_repeats_the_same_answer(lm: dspy.LM) -> None:
    program = dspy.Predict("question -> answer")
    with dspy.context(lm=lm, adapter=dspy.JSONAdapter()):
        answers = {program(question="Name a color of the sky.").answer for _ in range(2)}
    assert len(answers) == 1


def test_concurrent_calls_are_serialized_and_all_counted(lm: dspy.LM) -> None:
    before = engine_stats(lm)
    labels: list[str] = []

    def worker(ticket: str) -> None:
        with dspy.context(lm=lm, adapter=dspy.JSONAdapter()):
            labels.append(dspy.Predict(Route)(ticket=ticket).label)

    tickets = ["My parcel is late.", "The app crashes on start.", "Reset my password please."]
    threads = [threading.Thread(target=worker, args=(t,)) for t in tickets]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert len(labels) == 3
    assert set(labels) <= set(LABELS)
    assert (engine_stats(lm) - before).calls == 3


def test_async_call(lm: dspy.LM) -> None:
    async def main() -> str:
        with dspy.context(lm=lm, adapter=dspy.JSONAdapter()):
            prediction = await dspy.Predict(Route).acall(ticket="Where is my package?")
        return str(prediction.label)

    assert asyncio.run(main()) in LABELS


def test_model_is_loaded_once_per_process(lm: dspy.LM) -> None:
    again = build_lm(SETTINGS)
    assert again.engine is lm.engine
    assert isinstance(lm.engine, EmbeddedEngine)


def test_context_overflow_is_a_clear_error_and_counted(lm: dspy.LM) -> None:
    small = load_engine(
        EmbeddedConfig(model_path=lm.engine.config.model_path, n_ctx=256, threads=2)
    )
    tiny_lm = make_lm(small)
    with dspy.context(lm=tiny_lm), pytest.raises(Exception, match="context") as caught:
        dspy.Predict("question -> answer")(question="word " * 400)
    assert "FLYWHEEL_LM_CTX" in str(caught.value)
    assert engine_stats(tiny_lm).errors == 1
    assert engine_stats(tiny_lm).calls == 0


def test_pickled_lm_reuses_the_loaded_engine(lm: dspy.LM) -> None:
    import pickle

    fresh = build_lm(SETTINGS)  # no history: DSPy's history holds unpicklable schema classes
    restored = pickle.loads(pickle.dumps(fresh))
    assert restored.engine is lm.engine  # same process: the cache, not a second model load
