"""Training parameters of a LoRA fine-tune, read from DSPy's ``train_kwargs``, and checked.

Defaults are what fits the 2-core CPU: rank 8 on every linear layer of the attention and MLP,
3 epochs, batch 4 (gradient accumulation of single examples: no padding), lr 5e-4, sequences of
at most 1024 tokens, 2 threads, and budgets of 30 minutes and 3 GB of trainer RSS.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any

from dspy_flywheel.compile.errors import OptimizerConfigError

TARGET_MODULES = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


@dataclass(frozen=True)
class TrainParams:
    rank: int = 8
    alpha: int = 16
    epochs: int = 3
    batch_size: int = 4
    learning_rate: float = 5e-4
    max_seq_len: int = 1024
    threads: int = 2
    seed: int = 0
    wall_time_s: float = 1800.0
    memory_mb: int = 3072

    @classmethod
    def from_kwargs(cls, kwargs: dict[str, Any] | None) -> TrainParams:
        """Parameters from ``train_kwargs``; unknown names or bad values raise naming them."""
        kwargs = dict(kwargs or {})
        known = {f.name: f.type for f in fields(cls)}
        unknown = sorted(set(kwargs) - set(known))
        if unknown:
            raise OptimizerConfigError(
                f"unknown train_kwargs {', '.join(unknown)}; accepted: {', '.join(known)}"
            )
        values: dict[str, Any] = {}
        for name, value in kwargs.items():
            default = getattr(cls, name)
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise OptimizerConfigError(f"train_kwargs {name} must be a number, not {value!r}")
            values[name] = type(default)(value)
            if values[name] <= 0:
                raise OptimizerConfigError(f"train_kwargs {name} must be > 0, not {value!r}")
        return cls(**values)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)
