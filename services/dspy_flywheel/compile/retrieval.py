"""Demos retrieved per input: a BM25 index over labeled training examples, kept in the
program's saved state so it is published, loaded and hot-reloaded with the rest of it.

A predictor with an index is a ``dspy.Predict`` whose class gains ``RetrievingMixin``: on each
call it shows its fixed demos (``predictor.demos``) followed by the ``k`` training examples most
similar to the call's inputs (the closest last, next to the question). ``dump_state`` adds a
``"retrieval"`` entry; ``compile.program_state.load_program_state`` (what every loader uses)
rebuilds the index from it. Pure Python, no extra dependency: tokens are lower-cased words and
numbers.
"""

from __future__ import annotations

import json
import math
import random
import re
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any, Final

from dspy_flywheel.compile.mixins import SavedExtra

STATE_KEY: Final = "retrieval"
# JSON bytes of the saved pool: with a label model (compile.label_model.MAX_STATE_FLOATS) a
# program version stays within one bus message (Kafka's default 1 MB)
POOL_MAX_BYTES: Final = 300_000
_TOKEN = re.compile(r"\w+", re.UNICODE)


def tokens(text: str) -> list[str]:
    return _TOKEN.findall(text.casefold())


class BM25Index:
    """Okapi BM25 over ``pool`` rows (dicts of every field), matched on ``input_fields``."""

    def __init__(
        self,
        pool: Sequence[Mapping[str, Any]],
        input_fields: Sequence[str],
        *,
        k: int = 6,
        k1: float = 1.2,
        b: float = 0.75,
    ) -> None:
        if k < 1:
            raise ValueError(f"retrieval k must be at least 1, got {k}")
        if not (math.isfinite(k1) and k1 > 0 and 0.0 <= b <= 1.0):
            raise ValueError(f"bm25 needs k1 > 0 and 0 <= b <= 1, got k1={k1}, b={b}")
        if not isinstance(input_fields, list | tuple) or not all(
            isinstance(f, str) for f in input_fields
        ):
            raise ValueError(f"retrieval input_fields must be field names, got {input_fields!r}")
        self.pool = [dict(row) for row in pool]
        self.input_fields = list(input_fields)
        self.k, self.k1, self.b = k, k1, b
        self._docs = [Counter(self._query_tokens(row)) for row in self.pool]
        lengths = [sum(doc.values()) for doc in self._docs]
        self._lengths = lengths
        self._avg = (sum(lengths) / len(lengths)) if lengths else 0.0
        frequency: Counter[str] = Counter()
        for doc in self._docs:
            frequency.update(doc.keys())
        n = len(self._docs)
        self._idf = {t: math.log(1 + (n - f + 0.5) / (f + 0.5)) for t, f in frequency.items()}

    def _query_tokens(self, values: Mapping[str, Any]) -> list[str]:
        return [t for name in self.input_fields for t in tokens(str(values.get(name, "")))]

    def scores(self, inputs: Mapping[str, Any]) -> list[float]:
        query = set(self._query_tokens(inputs))
        result = []
        for doc, length in zip(self._docs, self._lengths, strict=True):
            norm = self.k1 * (1 - self.b + self.b * length / self._avg) if self._avg else 0.0
            result.append(
                sum(
                    self._idf[t] * doc[t] * (self.k1 + 1) / (doc[t] + norm)
                    for t in query
                    if t in doc
                )
            )
        return result

    def nearest(self, inputs: Mapping[str, Any], k: int | None = None) -> list[dict[str, Any]]:
        """The ``k`` most similar pool rows, most similar first (ties: pool order)."""
        scores = self.scores(inputs)
        order = sorted(range(len(self.pool)), key=lambda i: (-scores[i], i))
        return [self.pool[i] for i in order[: k or self.k]]

    def check_against(self, signature: Any) -> None:
        """Raises ValueError unless the index reads the signature's input fields."""
        if not set(self.input_fields) <= set(signature.input_fields):
            raise ValueError(
                f"retrieval reads {self.input_fields}, not the signature's inputs "
                f"{list(signature.input_fields)}"
            )

    def to_state(self) -> dict[str, Any]:
        return {
            "kind": "bm25",
            "k": self.k,
            "k1": self.k1,
            "b": self.b,
            "input_fields": self.input_fields,
            "pool": self.pool,
        }

    @classmethod
    def from_state(cls, state: Mapping[str, Any]) -> BM25Index:
        if state.get("kind") != "bm25" or not isinstance(state.get("pool"), list):
            raise ValueError(f"not a bm25 retrieval state: kind={state.get('kind')!r}")
        return cls(
            state["pool"],
            state["input_fields"],
            k=int(state["k"]),
            k1=float(state["k1"]),
            b=float(state["b"]),
        )


def bounded_pool(
    rows: Sequence[Mapping[str, Any]], max_bytes: int, seed: int = 0
) -> list[Mapping[str, Any]]:
    """``rows`` when they take at most ``max_bytes`` as JSON, else a seeded sample that does,
    in their order."""
    sizes = [len(json.dumps(row)) for row in rows]
    if sum(sizes) <= max_bytes:
        return list(rows)
    order = list(range(len(rows)))
    random.Random(seed).shuffle(order)
    kept, total = set(), 0
    for i in order:
        if total + sizes[i] <= max_bytes:
            kept.add(i)
            total += sizes[i]
    return [row for i, row in enumerate(rows) if i in kept]


def _demo_key(demo: Any) -> str:
    items = demo.items() if hasattr(demo, "items") else dict(demo).items()
    return repr(sorted((str(k), str(v)) for k, v in items if not str(k).startswith("dspy_")))


class RetrievingMixin(SavedExtra):
    """Adds per-call retrieved demos to a ``dspy.Predict`` (see the module docstring)."""

    key = STATE_KEY
    saved_as = BM25Index
    retrieval: BM25Index | None = None

    def _with_demos(self, kwargs: dict[str, Any]) -> dict[str, Any]:
        if self.retrieval is not None and "demos" not in kwargs:
            fixed = list(self.demos)  # type: ignore[attr-defined]  # dspy.Predict's
            seen = {_demo_key(d) for d in fixed}
            inputs = {name: kwargs.get(name) for name in self.retrieval.input_fields}
            wanted = self.retrieval.k + len(fixed)
            near = [d for d in self.retrieval.nearest(inputs, wanted) if _demo_key(d) not in seen]
            near = near[: self.retrieval.k]
            kwargs["demos"] = fixed + list(reversed(near))  # the closest next to the input
        return kwargs

    def forward(self, **kwargs: Any) -> Any:
        return super().forward(**self._with_demos(kwargs))  # type: ignore[misc]  # the Predict's

    async def aforward(self, **kwargs: Any) -> Any:
        return await super().aforward(**self._with_demos(kwargs))  # type: ignore[misc]
