"""A PEFT LoRA state dict -> a llama.cpp LoRA adapter GGUF (``general.type = adapter``).

llama.cpp applies ``W x + scale * alpha / r * B (A x)`` per adapted tensor, with ``A`` stored as
``<tensor>.lora_a`` (HF ``lora_A``: r x in) and ``B`` as ``<tensor>.lora_b`` (HF ``lora_B``:
out x r), named like the base GGUF's tensors (``blk.N.attn_q.weight``). Only the names and one
permutation differ from the HF side: llama.cpp's converter interleaves the rotary halves of the
Llama q/k rows, and transformers un-interleaves them when it dequantizes a GGUF, so B's rows of
q and k go back through the same permutation. This is what llama.cpp's
``convert_lora_to_gguf.py`` does for these architectures, without needing the base model's HF
checkpoint (we have only the GGUF).

Needs ``gguf`` and ``numpy`` (the ``finetune`` extra), so it is imported by the trainer only.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

# Architectures whose GGUF -> HF loading and LoRA mapping are known here; q/k permuted or not.
SUPPORTED_ARCHS = {"llama": True, "qwen2": False}
_PEFT_KEY = re.compile(r"^(?:base_model\.model\.)?(?P<module>.+)\.lora_(?P<part>[AB])\.weight$")


def permute_rows(weights: Any, n_head: int) -> Any:
    """llama.cpp's q/k row interleave (``LlamaModel.permute`` in convert_hf_to_gguf)."""
    rows = weights.shape[0]
    return (
        weights.reshape(n_head, 2, rows // n_head // 2, *weights.shape[1:])
        .swapaxes(1, 2)
        .reshape(weights.shape)
    )


def gguf_tensors(
    state: Mapping[str, Any], arch: str, n_layers: int, n_head: int, n_head_kv: int
) -> dict[str, Any]:
    """``blk.N.<t>.weight.lora_a|b`` -> float32 array, from PEFT ``...lora_A|B.weight`` keys."""
    import gguf

    if arch not in SUPPORTED_ARCHS:
        raise ValueError(
            f"LoRA export supports architectures {sorted(SUPPORTED_ARCHS)}, not {arch!r}"
        )
    arch_enum = {name: key for key, name in gguf.MODEL_ARCH_NAMES.items()}[arch]
    names = gguf.get_tensor_name_map(arch_enum, n_layers)
    out: dict[str, Any] = {}
    for key, value in state.items():
        match = _PEFT_KEY.match(key)
        if match is None:
            raise ValueError(f"not a LoRA weight: {key}")
        hf_name = match["module"] + ".weight"
        target = names.get_name(hf_name, try_suffixes=(".weight",))
        if target is None:
            raise ValueError(f"no GGUF tensor for {hf_name} in {arch}")
        array = np.ascontiguousarray(np.asarray(value, dtype=np.float32))
        if match["part"] == "B" and SUPPORTED_ARCHS[arch]:
            if target.endswith("attn_q.weight"):
                array = np.ascontiguousarray(permute_rows(array, n_head))
            elif target.endswith("attn_k.weight"):
                array = np.ascontiguousarray(permute_rows(array, n_head_kv))
        out[f"{target}.lora_{match['part'].lower()}"] = array
    return out


def write_adapter(path: Path, tensors: Mapping[str, Any], arch: str, alpha: float) -> None:
    """Write a llama.cpp LoRA adapter GGUF with ``tensors`` (from ``gguf_tensors``)."""
    import gguf

    writer = gguf.GGUFWriter(str(path), arch)
    writer.add_string("general.type", "adapter")
    writer.add_string("adapter.type", "lora")
    writer.add_float32("adapter.lora.alpha", float(alpha))
    for name in sorted(tensors):
        writer.add_tensor(name, tensors[name])
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
