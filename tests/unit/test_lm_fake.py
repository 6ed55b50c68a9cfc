"""FakeEngine through real DSPy modules: both adapters, counters, faults, async, copies."""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Literal

import dspy
import pytest

from dspy_flywheel.lm import EngineStats, engine_stats, make_lm, reset_engine_stats
from tests.fixtures.fake_lm import (
    ChatMessage,
    FakeEngine,
    demo_count,
    format_fields,
    input_fields,
    learning_responder,
)


def route(messages: list[ChatMessage]) -> dict[str, str]:
    ticket = input_fields(messages)["ticket"]
    return {"label": "billing" if "charged" in ticket else "technical"}


@pytest.mark.parametrize("adapter", [dspy.ChatAdapter(), dspy.JSONAdapter()], ids=["chat", "json"])
def test_predict_parses_the_fake_answer_with_each_adapter(adapter: dspy.Adapter) -> None:
    lm = make_lm(FakeEngine(route))
    program = dspy.Predict("ticket -> label")
    with dspy.context(lm=lm, adapter=adapter):
        assert program(ticket="I was charged twice").label == "billing"
        assert program(ticket="The app crashes on start").label == "technical"
    stats = engine_stats(lm)
    assert stats.calls == 2
    assert stats.errors == 0
    assert stats.prompt_tokens > 20
    assert stats.completion_tokens >= 2


def test_json_adapter_sends_the_output_schema_to_the_engine() -> None:
    seen: list[ChatMessage] = []
    engine = FakeEngine(lambda messages: seen.extend(messages) or {"label": "account"})
    lm = make_lm(engine)

    class Route(dspy.Signature):
        ticket: str = dspy.InputField()
        label: Literal["billing", "account"] = dspy.OutputField()

    with dspy.context(lm=lm, adapter=dspy.JSONAdapter()):
        assert dspy.Predict(Route)(ticket="reset my password").label == "account"
    assert seen
    assert seen[0]["role"] == "system"
    assert engine.last_request is not None
    response_format = engine.last_request.config.response_format
    assert response_format is not None
    assert response_format["type"] == "json_schema"
    schema = response_format["schema"]
    assert schema["properties"]["label"]["enum"] == ["billing", "account"]


def test_input_fields_and_demo_count_read_a_few_shot_prompt() -> None:
    engine = FakeEngine(lambda messages: {"label": str(demo_count(messages))})
    lm = make_lm(engine)
    program = dspy.Predict("ticket -> label")
    program.demos = [
        dspy.Example(ticket="card declined", label="billing"),
        dspy.Example(ticket="app is slow", label="technical"),
    ]
    with dspy.context(lm=lm):
        assert program(ticket="where is my parcel\n\nit is late").label == "2"
    assert input_fields(list(engine.requests[-1])) == {"ticket": "where is my parcel\n\nit is late"}


def test_raw_text_is_returned_verbatim() -> None:
    lm = make_lm(FakeEngine(lambda _m: "[[ ## answer ## ]]\n42\n\n[[ ## completed ## ]]"))
    with dspy.context(lm=lm, adapter=dspy.ChatAdapter()):
        assert dspy.Predict("question -> answer")(question="6*7?").answer == "42"


def test_error_injection_is_deterministic_and_counted() -> None:
    def run(seed: int) -> list[bool]:
        engine = FakeEngine(route, error_rate=0.5, seed=seed)
        lm = make_lm(engine)
        outcomes = []
        with dspy.context(lm=lm):
            for _ in range(20):
                try:
                    dspy.Predict("ticket -> label")(ticket="charged")
                    outcomes.append(True)
                except Exception:
                    outcomes.append(False)
        stats = engine_stats(lm)
        assert stats.calls == outcomes.count(True)
        assert stats.errors == outcomes.count(False)
        return outcomes

    first = run(seed=3)
    assert first == run(seed=3)
    assert 3 <= first.count(False) <= 17


def test_latency_is_applied() -> None:
    lm = make_lm(FakeEngine(route, latency_s=0.05))
    started = time.perf_counter()
    with dspy.context(lm=lm):
        dspy.Predict("ticket -> label")(ticket="charged")
    assert time.perf_counter() - started >= 0.05


def test_bad_arguments_are_refused() -> None:
    with pytest.raises(ValueError, match="error_rate"):
        FakeEngine(route, error_rate=1.5)
    with pytest.raises(ValueError, match="latency"):
        FakeEngine(route, latency_s=-1)


def test_copies_of_the_lm_share_counters_and_reset_zeroes_them() -> None:
    lm = make_lm(FakeEngine(route))
    with dspy.context(lm=lm.copy()):
        dspy.Predict("ticket -> label")(ticket="charged")
    with dspy.context(lm=lm):
        dspy.Predict("ticket -> label")(ticket="charged")
    assert engine_stats(lm).calls == 2
    held = reset_engine_stats(lm)
    assert held.calls == 2
    assert engine_stats(lm) == EngineStats()


def test_async_calls_run_through_the_async_engine() -> None:
    lm = make_lm(FakeEngine(route))

    async def main() -> str:
        with dspy.context(lm=lm):
            prediction = await dspy.Predict("ticket -> label").acall(ticket="charged twice")
        return str(prediction.label)

    assert asyncio.run(main()) == "billing"
    assert engine_stats(lm).calls == 1


def test_concurrent_calls_are_all_counted() -> None:
    lm = make_lm(FakeEngine(route, latency_s=0.01))
    program = dspy.Predict("ticket -> label")
    labels: list[str] = []

    def worker() -> None:
        with dspy.context(lm=lm):
            for _ in range(5):
                labels.append(program(ticket="charged").label)

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert labels == ["billing"] * 20
    assert engine_stats(lm).calls == 20


def test_stats_subtract_to_measure_a_span() -> None:
    lm = make_lm(FakeEngine(route))
    with dspy.context(lm=lm):
        dspy.Predict("ticket -> label")(ticket="charged")
        before = engine_stats(lm)
        dspy.Predict("ticket -> label")(ticket="charged")
    spent = engine_stats(lm) - before
    assert spent.calls == 1
    assert spent.total_tokens == spent.prompt_tokens + spent.completion_tokens > 0


def test_format_fields_matches_each_adapter() -> None:
    assert format_fields({"a": "1"}, as_json=True) == '{"a": "1"}'
    assert format_fields({"a": "1"}, as_json=False) == "[[ ## a ## ]]\n1\n\n[[ ## completed ## ]]"


def test_learning_responder_improves_once_demos_are_added() -> None:
    truth = {"card declined": "billing", "app is slow": "technical"}
    responder = learning_responder(
        lambda inputs: {"label": truth[inputs["ticket"]]}, untrained={"label": "unknown"}
    )
    lm = make_lm(FakeEngine(responder))
    program = dspy.Predict("ticket -> label")
    with dspy.context(lm=lm):
        assert program(ticket="app is slow").label == "unknown"
        program.demos = [dspy.Example(ticket="card declined", label="billing")]
        assert program(ticket="app is slow").label == "technical"


INLINE = "[[ ## label ## ]] = 'billing'\n[[ ## completed ## ]]"  # Qwen2.5-Coder-1.5B's habit


@pytest.mark.parametrize(
    ("completion", "expected"),
    [
        ("[[ ## label ## ]] = 'technical'\n\n[[ ## completed ## ]]", "technical"),
        ('[[ ## label ## ]] = "account"\n[[ ## completed ## ]]', "account"),
        ("[[ ## label ## ]]: shipping\n[[ ## completed ## ]]", "shipping"),
        ("[[ ## label ## ]] =billing", "billing"),
        ("[[ ## label ## ]]\nbilling\n\n[[ ## completed ## ]]", "billing"),  # the usual form
    ],
)
def test_inline_chat_adapter_reads_a_value_assigned_after_the_header(
    completion: str, expected: str
) -> None:
    from dspy_flywheel.lm import InlineChatAdapter

    class Route(dspy.Signature):  # type: ignore[misc]  # dspy is untyped
        ticket: str = dspy.InputField()
        label: Literal["billing", "technical", "account", "shipping"] = dspy.OutputField()

    assert InlineChatAdapter().parse(Route, completion) == {"label": expected}
    with pytest.raises(dspy.utils.exceptions.AdapterParseError):
        dspy.ChatAdapter().parse(Route, completion.replace("\n" + expected, " = 'x'"))


def test_inline_chat_adapter_keeps_a_string_fields_own_text() -> None:
    from dspy_flywheel.lm.adapter import unassign

    text = "[[ ## answer ## ]]\nx = 'y' is how you assign\n\n[[ ## completed ## ]]"
    assert unassign(text) == text  # only a header line's inline value moves
    assert unassign("[[ ## a ## ]] = 'it''s'\n[[ ## b ## ]] = 2") == (
        "[[ ## a ## ]]\nit''s\n[[ ## b ## ]]\n2"
    )


@pytest.mark.parametrize(
    ("configure", "calls"), [("dspy", 2), ("flywheel", 1)], ids=["chat", "inline"]
)
def test_configure_lm_saves_the_json_fallbacks_second_call(configure: str, calls: int) -> None:
    from dspy_flywheel.lm import configure_lm

    class Route(dspy.Signature):  # type: ignore[misc]  # dspy is untyped
        ticket: str = dspy.InputField()
        label: Literal["billing", "account"] = dspy.OutputField()

    def respond(messages: list[ChatMessage]) -> str:  # the JSON fallback's prompt asks for JSON
        return '{"label": "billing"}' if "JSON" in messages[0]["content"] else INLINE

    lm = make_lm(FakeEngine(respond))
    if configure == "flywheel":
        configure_lm(lm)
    else:
        dspy.configure(lm=lm)
    try:
        assert dspy.Predict(Route)(ticket="charged twice").label == "billing"
    finally:
        dspy.configure(lm=None, adapter=None)
    assert engine_stats(lm).calls == calls  # ChatAdapter: its parse fails, JSONAdapter's call
