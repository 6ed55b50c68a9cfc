"""The trainer's loss on a tiny random Llama (no real model): the answer-only logits and the
gradient checkpointing give the same loss and gradients as transformers' full-logits loss with
the prompt masked, on the same LoRA weights."""

from __future__ import annotations

from typing import Any

import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")
peft = pytest.importorskip("peft")

from dspy_flywheel.finetune.params import TARGET_MODULES, TrainParams  # noqa: E402
from dspy_flywheel.finetune.train import answer_loss, with_lora  # noqa: E402


def _tiny_llama() -> Any:
    torch.manual_seed(0)
    config = transformers.LlamaConfig(
        vocab_size=97,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=64,
    )
    return transformers.LlamaForCausalLM(config)


def _live(model: Any) -> Any:
    """B starts at zero: give it the same non-zero values in every model so the LoRA path counts."""
    generator = torch.Generator().manual_seed(2)
    for name, param in sorted(model.named_parameters()):
        if "lora_B" in name:
            with torch.no_grad():
                param.copy_(torch.randn(param.shape, generator=generator) * 0.1)
    return model


def _plain_lora() -> Any:
    lora = peft.LoraConfig(r=4, lora_alpha=8, target_modules=list(TARGET_MODULES))
    return _live(peft.get_peft_model(_tiny_llama(), lora))


def _grads(model: Any) -> dict[str, Any]:
    return {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}


@pytest.mark.parametrize("answer_len", [1, 3, 7])
def test_trainer_loss_matches_the_masked_full_loss(answer_len: int) -> None:
    ids = [int(i) for i in torch.randint(3, 97, (20,), generator=torch.Generator().manual_seed(1))]
    labels = [-100] * (len(ids) - answer_len) + ids[-answer_len:]

    trainer_model = _live(with_lora(_tiny_llama(), TrainParams(rank=4, alpha=8)))
    ours = answer_loss(trainer_model, ids, answer_len)
    ours.backward()
    reference_model = _plain_lora()
    reference = reference_model(input_ids=torch.tensor([ids]), labels=torch.tensor([labels])).loss
    reference.backward()

    assert trainer_model.is_gradient_checkpointing
    assert float(ours.detach()) == pytest.approx(float(reference.detach()), rel=1e-5)
    ours_grads, reference_grads = _grads(trainer_model), _grads(reference_model)
    lora_grads = {n for n in ours_grads if "lora_" in n}
    assert lora_grads
    assert lora_grads == set(reference_grads)
    for name in lora_grads:
        assert torch.allclose(ours_grads[name], reference_grads[name], atol=1e-6), name
    assert any(float(ours_grads[n].abs().sum()) > 0 for n in lora_grads)


def test_answer_loss_computes_logits_only_for_the_answer() -> None:
    model = _plain_lora()
    seen: list[tuple[int, ...]] = []
    head = model.base_model.model.lm_head
    head.register_forward_hook(lambda _m, _i, out: seen.append(tuple(out.shape)))
    answer_loss(model, list(range(3, 43)), 2)
    assert seen == [(1, 3, 97)]  # 3 positions predict 2 answer tokens (+1 unused), not 40
