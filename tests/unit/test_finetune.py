"""CPU fine-tuning without the training stack: parameters, artifacts, the GGUF mapping, the
provider's budgets and cancel (a stand-in trainer process), and a worker refusing adapters."""

from __future__ import annotations

import json
import sys
import threading
import time
from pathlib import Path

import dspy
import pytest

from dspy_flywheel.compile.catalog import create_optimizer, setting_names
from dspy_flywheel.compile.errors import OptimizerConfigError
from dspy_flywheel.finetune import artifacts
from dspy_flywheel.finetune.artifacts import AdapterArtifact, adapter_model, adapter_sha
from dspy_flywheel.finetune.errors import (
    CorruptAdapter,
    TrainingBudgetExceeded,
    TrainingCancelled,
    TrainingFailed,
    TrainingStackMissing,
)
from dspy_flywheel.finetune.params import TrainParams
from dspy_flywheel.finetune.provider import EmbeddedProvider, EmbeddedTrainingJob
from dspy_flywheel.lm import make_lm
from dspy_flywheel.sdk.errors import AdapterRefused
from dspy_flywheel.sdk.programs import ProgramSlot
from tests.fixtures.fake_lm import FakeEngine

CHAT = [
    {
        "messages": [
            {"role": "system", "content": "Route the ticket."},
            {"role": "user", "content": "card charged twice"},
            {"role": "assistant", "content": "[[ ## label ## ]]\nbilling"},
        ]
    }
]


def _artifact(path: Path, **over: object) -> AdapterArtifact:
    fields = {
        "sha256": artifacts.sha256_of(path),
        "size": path.stat().st_size,
        "base_model": "base",
        "base_sha256": "0" * 64,
        "architecture": "llama",
        **over,
    }
    return AdapterArtifact(**fields)  # type: ignore[arg-type]


@pytest.fixture
def store_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("FLYWHEEL_ARTIFACTS_DIR", str(tmp_path / "store"))
    return tmp_path / "store"


def test_train_params_from_kwargs_checks_names_and_values() -> None:
    params = TrainParams.from_kwargs({"epochs": 2, "learning_rate": 1e-3})
    assert (params.epochs, params.learning_rate, params.rank) == (2, 1e-3, 8)
    with pytest.raises(OptimizerConfigError, match="unknown train_kwargs lr"):
        TrainParams.from_kwargs({"lr": 1})
    with pytest.raises(OptimizerConfigError, match="epochs must be > 0"):
        TrainParams.from_kwargs({"epochs": 0})
    with pytest.raises(OptimizerConfigError, match="must be a number"):
        TrainParams.from_kwargs({"rank": "8"})


def test_adapter_model_names_round_trip() -> None:
    sha = "ab" * 32
    name = adapter_model("embedded/smollm2", sha)
    assert name == f"embedded/smollm2@lora-{sha}"
    assert adapter_sha(name) == sha
    assert adapter_sha("embedded/smollm2") is None
    assert adapter_model(name, "cd" * 32).count("@lora-") == 1  # replaces, never stacks


def test_store_then_fetch_verifies_size_magic_and_hash(tmp_path: Path, store_dir: Path) -> None:
    source = tmp_path / "adapter.gguf"
    source.write_bytes(b"GGUF" + bytes(range(256)) * 40)
    artifact = _artifact(source)
    stored = artifacts.store(source, artifact)
    assert artifacts.fetch(artifact) == stored
    assert artifacts.describe(artifact.sha256) == artifact

    stored.write_bytes(stored.read_bytes()[:-100])  # truncated
    with pytest.raises(CorruptAdapter, match="truncated"):
        artifacts.fetch(artifact)
    data = bytearray(source.read_bytes())
    data[100] ^= 0xFF  # same size, altered
    stored.write_bytes(bytes(data))
    with pytest.raises(CorruptAdapter, match="altered"):
        artifacts.fetch(artifact)
    stored.write_bytes(b"XXXX" + source.read_bytes()[4:])
    with pytest.raises(CorruptAdapter, match="not a GGUF"):
        artifacts.fetch(artifact)


def test_adapter_description_is_checked() -> None:
    with pytest.raises(CorruptAdapter, match="not JSON"):
        AdapterArtifact.from_json("{nope")
    with pytest.raises(CorruptAdapter, match="not a sha256"):
        AdapterArtifact.from_dict(
            {"sha256": "x", "size": 1, "base_model": "b", "base_sha256": "", "architecture": ""}
        )
    too_big = artifacts.MAX_ADAPTER_BYTES + 1
    with pytest.raises(CorruptAdapter, match="size"):
        AdapterArtifact.from_dict(
            {
                "sha256": "a" * 64,
                "size": too_big,
                "base_model": "b",
                "base_sha256": "",
                "architecture": "",
            }
        )


def test_permute_rows_matches_llama_cpp_interleave() -> None:
    np = pytest.importorskip("numpy")
    from dspy_flywheel.finetune.gguf_lora import permute_rows

    # 2 heads of 4 rows: llama.cpp interleaves each head's two halves row by row.
    rows = np.arange(8).reshape(8, 1)
    assert permute_rows(rows, 2)[:, 0].tolist() == [0, 2, 1, 3, 4, 6, 5, 7]


def test_gguf_tensors_maps_peft_names_and_permutes_only_b_of_q_and_k() -> None:
    np = pytest.importorskip("numpy")
    pytest.importorskip("gguf")
    from dspy_flywheel.finetune.gguf_lora import gguf_tensors, permute_rows

    b = np.arange(16, dtype=np.float32).reshape(8, 2)
    a = np.ones((2, 8), dtype=np.float32)
    state = {
        "base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight": a,
        "base_model.model.model.layers.0.self_attn.q_proj.lora_B.weight": b,
        "base_model.model.model.layers.0.mlp.down_proj.lora_B.weight": b,
    }
    out = gguf_tensors(state, "llama", 1, n_head=2, n_head_kv=2)
    assert set(out) == {
        "blk.0.attn_q.weight.lora_a",
        "blk.0.attn_q.weight.lora_b",
        "blk.0.ffn_down.weight.lora_b",
    }
    assert (out["blk.0.attn_q.weight.lora_b"] == permute_rows(b, 2)).all()
    assert (out["blk.0.ffn_down.weight.lora_b"] == b).all()
    assert (out["blk.0.attn_q.weight.lora_a"] == a).all()
    with pytest.raises(ValueError, match="architectures"):
        gguf_tensors(state, "gpt2", 1, 2, 2)


def test_write_adapter_is_a_llama_cpp_lora_gguf(tmp_path: Path) -> None:
    np = pytest.importorskip("numpy")
    gguf = pytest.importorskip("gguf")
    from dspy_flywheel.finetune.gguf_lora import write_adapter

    path = tmp_path / "a.gguf"
    write_adapter(path, {"blk.0.attn_q.weight.lora_a": np.ones((2, 8), np.float32)}, "llama", 16)
    reader = gguf.GGUFReader(str(path))
    value = reader.fields["general.type"]
    assert bytes(value.parts[value.data[0]]).decode() == "adapter"
    assert [t.name for t in reader.tensors] == ["blk.0.attn_q.weight.lora_a"]


# -- the provider, with a stand-in trainer process (same protocol, no torch) ----------------

FAKE_TRAINER = """
import json, sys, time
mode = sys.argv[-1]
print(json.dumps({"type": "loaded", "seconds": 0.1}), flush=True)
if mode == "memory":
    hog = bytearray(400 * 1024 * 1024)
    for i in range(0, len(hog), 4096):
        hog[i] = 1
for step in range(1, 1000):
    print(json.dumps({"type": "step", "step": step, "steps": 999, "epoch": 1, "loss": 1.0 / step}),
          flush=True)
    time.sleep(0.05)
"""


def _provider(tmp_path: Path, mode: str) -> EmbeddedProvider:
    script = tmp_path / "fake_trainer.py"
    script.write_text(FAKE_TRAINER)
    wrapper = tmp_path / "python"
    wrapper.write_text(f"#!/bin/sh\nexec {sys.executable} {script} {mode}\n")
    wrapper.chmod(0o755)
    base = tmp_path / "base.gguf"
    base.write_bytes(b"GGUF base")
    return EmbeddedProvider(str(base), python=str(wrapper))


def _uninstall(monkeypatch: pytest.MonkeyPatch, package: str) -> None:
    """Make ``package`` look absent to ``importlib.util.find_spec``."""
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda n, *a: None if n == package else real(n, *a)
    )


def _job() -> EmbeddedTrainingJob:
    return EmbeddedTrainingJob(model="embedded/base", train_data=CHAT, train_kwargs={})


def test_training_stack_missing_is_a_clear_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _uninstall(monkeypatch, "peft")
    with pytest.raises(TrainingStackMissing, match=r"missing: peft.*dspy-flywheel\[finetune\]"):
        _provider(tmp_path, "slow").finetune(_job(), "embedded/base", CHAT, "chat", {})


def test_wall_time_budget_kills_the_trainer_mid_training(
    tmp_path: Path, store_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("dspy_flywheel.finetune.provider.check_training_stack", lambda: None)
    job = _job()
    started = time.monotonic()
    with pytest.raises(TrainingBudgetExceeded, match=r"wall-time budget of 1.5 s at step \d+/999"):
        _provider(tmp_path, "slow").finetune(job, "m", CHAT, "chat", {"wall_time_s": 1.5})
    assert time.monotonic() - started < 10
    assert job.process is not None
    assert job.process.poll() is not None
    assert not store_dir.exists() or not list(store_dir.iterdir())  # nothing stored


def test_memory_budget_kills_the_trainer(
    tmp_path: Path, store_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("dspy_flywheel.finetune.provider.check_training_stack", lambda: None)
    with pytest.raises(TrainingBudgetExceeded, match="over the budget of 200 MB"):
        _provider(tmp_path, "memory").finetune(_job(), "m", CHAT, "chat", {"memory_mb": 200})


def test_cancel_kills_the_trainer_and_progress_reaches_listeners(
    tmp_path: Path, store_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from dspy_flywheel.finetune.provider import add_progress_listener, remove_progress_listener

    monkeypatch.setattr("dspy_flywheel.finetune.provider.check_training_stack", lambda: None)
    seen: list[dict[str, object]] = []
    add_progress_listener(seen.append)
    job = _job()
    threading.Timer(1.0, job.cancel).start()
    try:
        with pytest.raises(TrainingCancelled, match="at step"):
            _provider(tmp_path, "slow").finetune(job, "m", CHAT, "chat", {})
    finally:
        remove_progress_listener(seen.append)
    steps = [m for m in seen if m["type"] == "step"]
    assert steps
    assert steps[-1]["loss"] == pytest.approx(1.0 / int(steps[-1]["step"]))
    assert job.status()["type"] == "step"


def test_no_training_data_and_other_formats_are_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("dspy_flywheel.finetune.provider.check_training_stack", lambda: None)
    provider = _provider(tmp_path, "slow")
    with pytest.raises(TrainingFailed, match="no training data"):
        provider.finetune(_job(), "m", [], "chat", {})
    with pytest.raises(TrainingFailed, match="chat data"):
        provider.finetune(_job(), "m", CHAT, "completion", {})


# -- the catalog ----------------------------------------------------------------------------


def test_bootstrap_finetune_is_offered_for_a_finetunable_lm(tmp_path: Path) -> None:
    lm = dspy.LM("flywheel/x", engine=FakeEngine(), provider=EmbeddedProvider(str(tmp_path)))
    optimizer = create_optimizer("finetune", metric=lambda *a: 1.0, lm=lm)
    assert optimizer.name == "BootstrapFinetune"
    assert optimizer.teacher == ("StratifiedFewShot", 4)
    assert optimizer.teleprompter.exclude_demos is True
    none = create_optimizer("BootstrapFinetune", metric=lambda *a: 1.0, lm=lm, teacher="none")
    assert none.teacher is None
    with pytest.raises(OptimizerConfigError, match="teacher must be"):
        create_optimizer("BootstrapFinetune", metric=lambda *a: 1.0, lm=lm, teacher="MIPROv2")
    with pytest.raises(OptimizerConfigError, match="does not support fine-tuning"):
        create_optimizer("BootstrapFinetune", metric=lambda *a: 1.0, lm=make_lm(FakeEngine()))
    assert {"teacher", "teacher_demos", "train_kwargs"} <= setting_names("BootstrapFinetune")


# -- a worker refusing an adapter keeps serving ---------------------------------------------


class Classify(dspy.Module):
    def __init__(self) -> None:
        super().__init__()
        self.predict = dspy.Predict("text -> label")

    def forward(self, text: str) -> dspy.Prediction:
        return self.predict(text=text)


def test_worker_refuses_an_adapter_it_cannot_serve_and_keeps_serving() -> None:
    from dspy_flywheel.compile.signature import signature_of as sig

    def factory() -> Classify:
        program = Classify()
        program.predict.lm = make_lm(FakeEngine())  # not the embedded engine
        return program

    slot = ProgramSlot(factory, history_size=3)
    first = Classify()
    first.predict.signature = first.predict.signature.with_instructions("V1")
    state, signature = json.dumps(first.dump_state()), json.dumps(sig(first))
    assert slot.offer(1, state, signature).status == "serving"
    good = AdapterArtifact("a" * 64, 10, "base", "0" * 64, "llama")
    with pytest.raises(AdapterRefused, match="needs the embedded engine"):
        slot.offer(2, state, signature, "serve", good.to_json())
    with pytest.raises(AdapterRefused, match="not JSON"):
        slot.offer(3, state, signature, "serve", "{broken")
    assert slot.current.version == 1


def test_compile_fails_before_any_lm_call_without_the_training_stack(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from dspy_flywheel.compile.compiler import compile_program

    _uninstall(monkeypatch, "torch")
    engine = FakeEngine()
    lm = dspy.LM("flywheel/x", engine=engine, provider=EmbeddedProvider(str(tmp_path)))
    optimizer = create_optimizer("BootstrapFinetune", metric=lambda *a: 1.0, lm=lm)
    data = [{"text": f"t{i}", "label": "a"} for i in range(4)]
    with pytest.raises(TrainingStackMissing, match="missing: torch"):
        compile_program(Classify(), data, optimizer, lm=lm)
    assert engine.counters.snapshot().calls == 0


def test_published_state_carries_no_lm_and_the_program_keeps_its_own() -> None:
    from dspy_flywheel.optimizer.job import state_without_lms

    program = Classify()
    lm = make_lm(FakeEngine())
    program.predict.lm = lm
    state = state_without_lms(program)
    assert state["predict"]["lm"] is None
    assert program.predict.lm is lm
