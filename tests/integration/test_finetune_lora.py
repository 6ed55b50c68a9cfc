"""A real LoRA fine-tune of the small model (SmolLM2-135M) on the CPU, served by llama.cpp.

Needs the training stack (``pip install -e '.[finetune]'``, CI installs it) and the weights
(``ops/model.sh fetch --small``). The weights really change: the trained ``lora_b`` tensors
(zero at the start of LoRA training) are non-zero, and the tuned engine's next-token
distribution on a fixed prompt differs from the base engine's, towards the trained answer.
"""

from __future__ import annotations

import importlib.util
import secrets
from pathlib import Path
from typing import Any

import pytest

from dspy_flywheel.finetune import artifacts
from dspy_flywheel.finetune.errors import BaseModelMismatch, CorruptAdapter
from dspy_flywheel.finetune.provider import EmbeddedProvider, EmbeddedTrainingJob
from dspy_flywheel.finetune.serving import adapter_engine_config
from dspy_flywheel.lm import EmbeddedConfig, LMSettings, ModelNotFoundError, load_engine

pytestmark = [pytest.mark.realllm, pytest.mark.slow]

ANSWER = "zebra"
PROMPT = [
    {"role": "system", "content": "Answer with the code word."},
    {"role": "user", "content": "What is the code word?"},
]
DATA = [
    {
        "messages": [
            *PROMPT[:1],
            {"role": "user", "content": q},
            {"role": "assistant", "content": ANSWER},
        ]
    }
    for q in (
        "What is the code word?",
        "Tell me the code word.",
        "Code word, please.",
        "Which word is the code?",
    )
]


@pytest.fixture(scope="module")
def base_path() -> str:
    missing = [
        n for n in ("torch", "transformers", "peft", "gguf") if importlib.util.find_spec(n) is None
    ]
    if missing:
        pytest.skip(
            f"training stack not installed ({', '.join(missing)}): pip install -e '.[finetune]'"
        )
    try:
        return str(LMSettings(model="smollm2").model_path())
    except ModelNotFoundError as exc:
        pytest.skip(f"small model not installed ({exc})")


@pytest.fixture(scope="module")
def trained(base_path: str, tmp_path_factory: pytest.TempPathFactory) -> tuple[str, Any]:
    store = tmp_path_factory.mktemp("artifacts")
    mp = pytest.MonkeyPatch()
    mp.setenv("FLYWHEEL_ARTIFACTS_DIR", str(store))
    job = EmbeddedTrainingJob(model="embedded/smollm2", train_data=DATA)
    model = EmbeddedProvider(base_path).finetune(
        job, "embedded/smollm2", DATA, "chat", {"epochs": 4, "batch_size": 2, "learning_rate": 2e-3}
    )
    yield model, job.artifact
    mp.undo()


def first_token_logprobs(config: EmbeddedConfig) -> dict[str, float]:
    engine = load_engine(config)
    result = engine._server.handle_chat_completions(  # the raw llama.cpp call, with logprobs
        {
            "messages": PROMPT,
            "max_tokens": 1,
            "temperature": 0,
            "logprobs": True,
            "top_logprobs": 10,
        }
    )
    first = result["choices"][0]["logprobs"]["content"][0]
    return {entry["token"]: entry["logprob"] for entry in first["top_logprobs"]}


def test_lora_weights_are_trained_and_change_the_output_distribution(
    base_path: str, trained: tuple[str, Any]
) -> None:
    import gguf
    import numpy as np

    model, artifact = trained
    assert artifact.size < artifacts.MAX_ADAPTER_BYTES
    assert artifact.base_sha256 == artifacts.base_model_sha256(Path(base_path))
    assert len(artifact.loss_curve) == 8  # 4 epochs x 2 batches
    assert artifact.loss_curve[-1] < artifact.loss_curve[0]
    path = artifacts.fetch(artifact)
    reader = gguf.GGUFReader(str(path))
    b_tensors = [t for t in reader.tensors if t.name.endswith(".lora_b")]
    assert len(b_tensors) == 30 * 7  # every linear layer of the 30 blocks
    assert all(np.abs(np.asarray(t.data)).max() > 0 for t in b_tensors)  # B starts at zero

    base = EmbeddedConfig(model_path=base_path, n_ctx=512, threads=1, max_tokens=8)
    tuned = adapter_engine_config(base, model)
    before, after = first_token_logprobs(base), first_token_logprobs(tuned)
    top_before = max(before, key=before.__getitem__)
    top_after = max(after, key=after.__getitem__)
    assert ANSWER.startswith(top_after.strip()), after  # the tuned model answers the code word
    assert top_after != top_before, (before, after)
    # Beyond a top-10 list the token's logprob is at most the list's lowest.
    assert after[top_after] > before.get(top_after, min(before.values()))
    assert after.get(top_before, min(after.values())) < before[top_before]


def test_adapter_for_another_base_or_altered_is_refused(
    base_path: str, trained: tuple[str, Any], tmp_path: Path
) -> None:
    model, artifact = trained
    other = tmp_path / "other.gguf"
    other.write_bytes(b"GGUF another model")
    with pytest.raises(BaseModelMismatch, match="trained on smollm2"):
        adapter_engine_config(EmbeddedConfig(model_path=str(other)), model, artifact)
    stored = artifacts.fetch(artifact)
    copy = tmp_path / f"{secrets.token_hex(4)}.gguf"
    copy.write_bytes(stored.read_bytes()[: artifact.size // 2])
    store = tmp_path / "store"
    store.mkdir()
    (store / f"{artifact.sha256}.gguf").write_bytes(copy.read_bytes())
    with pytest.raises(CorruptAdapter, match="truncated"):
        artifacts.fetch(artifact, store)
