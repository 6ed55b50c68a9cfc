"""Program swaps: checks, new instances, pin / unpin / rollback, no mixed prompts."""

from __future__ import annotations

import json
import re
import threading

import dspy
import pytest

from dspy_flywheel.lm import make_lm
from dspy_flywheel.sdk import (
    CorruptProgram,
    SignatureMismatch,
    UnknownVersion,
    signature_mismatch,
    signature_of,
)
from dspy_flywheel.sdk.programs import ProgramSlot
from tests.fixtures.fake_lm import FakeEngine


class Classify(dspy.Module):
    def __init__(self) -> None:
        super().__init__()
        self.predict = dspy.Predict("text -> label")

    def forward(self, text: str) -> dspy.Prediction:
        return self.predict(text=text)


def version_of(n: int, *, demos: int = 2) -> Classify:
    """A program whose instruction and demos all name version ``n``."""
    program = Classify()
    program.predict.signature = program.predict.signature.with_instructions(f"INSTRUCTION-V{n}")
    program.predict.demos = [
        dspy.Example(text=f"demo-{d}-V{n}", label=f"label-V{n}") for d in range(demos)
    ]
    return program


def published(n: int) -> tuple[str, str]:
    program = version_of(n)
    return json.dumps(program.dump_state()), json.dumps(signature_of(program))


def test_signature_of_lists_fields_in_order_per_predictor() -> None:
    class Two(dspy.Module):
        def __init__(self) -> None:
            super().__init__()
            self.draft = dspy.ChainOfThought("question, context -> answer")
            self.check = dspy.Predict("answer -> verdict, confidence")

    assert signature_of(Two()) == {
        "draft.predict": {"inputs": ["question", "context"], "outputs": ["reasoning", "answer"]},
        "check": {"inputs": ["answer"], "outputs": ["verdict", "confidence"]},
    }


def test_signature_mismatch_names_the_difference() -> None:
    ours = signature_of(Classify())
    assert signature_mismatch(ours, ours) is None
    renamed = {"predict": {"inputs": ["text"], "outputs": ["category"]}}
    assert "outputs ['category'] != ['label']" in str(signature_mismatch(ours, renamed))
    reordered = {"predict": {"inputs": ["label"], "outputs": ["text"]}}
    assert signature_mismatch(ours, reordered) is not None
    assert "missing ['predict']" in str(signature_mismatch(ours, {"other": {}}))


def test_offer_serves_a_new_instance_and_leaves_the_old_untouched() -> None:
    slot = ProgramSlot(Classify, history_size=5)
    old = slot.current.program
    outcome = slot.offer(1, *published(1))
    assert outcome.status == "serving"
    assert outcome.version == 1
    new = slot.current.program
    assert new is not old
    assert old.predict.demos == []
    assert "INSTRUCTION-V1" in new.predict.signature.instructions
    assert [d["text"] for d in new.predict.demos] == ["demo-0-V1", "demo-1-V1"]


def test_published_state_keeps_the_workers_own_lm() -> None:
    own_lm = make_lm(FakeEngine(), name="flywheel/own")

    class WithLM(Classify):
        def __init__(self) -> None:
            super().__init__()
            self.predict.lm = own_lm

    program = version_of(1)
    program.predict.lm = dspy.LM("openai/optimizer-side-model")
    slot = ProgramSlot(WithLM, history_size=5)
    slot.offer(1, json.dumps(program.dump_state()), json.dumps(signature_of(program)))
    assert slot.current.program.predict.lm is own_lm


def test_renamed_field_is_refused_and_the_old_program_keeps_serving() -> None:
    slot = ProgramSlot(Classify, history_size=5)
    slot.offer(1, *published(1))

    class Renamed(dspy.Module):
        def __init__(self) -> None:
            super().__init__()
            self.predict = dspy.Predict("text -> category")

    other = Renamed()
    with pytest.raises(SignatureMismatch, match="category"):
        slot.offer(2, json.dumps(other.dump_state()), json.dumps(signature_of(other)))
    assert slot.current.version == 1


def test_state_that_lies_about_its_signature_is_refused() -> None:
    slot = ProgramSlot(Classify, history_size=5)
    state = version_of(2).dump_state()
    state["predict"]["demos"] = [{"text": "a", "category": "b"}]  # a renamed field in the demos
    with pytest.raises(CorruptProgram, match="category"):
        slot.offer(2, json.dumps(state), json.dumps(signature_of(Classify())))
    with pytest.raises(CorruptProgram, match="not JSON"):
        slot.offer(3, "{not json", json.dumps(signature_of(Classify())))
    state = version_of(4).dump_state()
    del state["predict"]["signature"]["fields"][1]
    with pytest.raises(CorruptProgram, match="1 fields"):
        slot.offer(4, json.dumps(state), json.dumps(signature_of(Classify())))
    assert slot.current.version is None


def test_pin_holds_back_updates_until_unpin() -> None:
    slot = ProgramSlot(Classify, history_size=5)
    slot.offer(1, *published(1))
    assert slot.pin().version == 1
    held = slot.offer(2, *published(2))
    assert held.status == "pinned"
    assert held.version == 1
    assert slot.current.version == 1
    assert slot.unpin().version == 2
    assert slot.current.version == 2
    slot.pin("code")
    assert slot.current.version is None
    assert slot.pinned == "code"
    assert slot.pin(1).version == 1
    with pytest.raises(UnknownVersion, match="not among"):
        slot.pin(7)


def test_rollback_walks_back_and_pins() -> None:
    slot = ProgramSlot(Classify, history_size=5)
    for n in (1, 2, 3):
        slot.offer(n, *published(n))
    assert slot.rollback().version == 2
    assert slot.pinned == 2
    assert slot.offer(4, *published(4)).status == "pinned"
    assert slot.rollback().version == 1
    assert slot.rollback().version is None
    with pytest.raises(UnknownVersion):
        slot.rollback()
    slot.unpin()
    assert slot.current.version == 4


def test_concurrent_calls_never_see_a_mixed_program() -> None:
    engine = FakeEngine(lambda _m: {"label": "x"})
    dspy.configure(lm=make_lm(engine))
    slot = ProgramSlot(Classify, history_size=3)
    slot.offer(0, *published(0))
    updates = [published(n) for n in range(1, 51)]
    prompts: list[str] = []
    lock = threading.Lock()
    stop = threading.Event()

    def call() -> None:
        while not stop.is_set():
            slot.current.program(text="hello")
            with lock:
                prompts.append(json.dumps(engine.requests[-1]))

    threads = [threading.Thread(target=call) for _ in range(4)]
    for t in threads:
        t.start()
    for n, update in enumerate(updates, start=1):
        slot.offer(n, *update)
    stop.set()
    for t in threads:
        t.join()
    assert len(prompts) > 50
    for prompt in prompts:  # one version's instruction and both its demos, nothing else
        assert len(set(re.findall(r"-V(\d+)(?!\d)", prompt))) == 1, prompt[:300]
        assert "INSTRUCTION-V" in prompt
        assert prompt.count("demo-") == 2
