"""A ticket-routing task on the fake LM, for tests and benchmarks of the optimizer.

The fake model answers a ticket correctly **only when a demo with the same label is in its
prompt** (otherwise it says ``unknown``), so few-shot optimization visibly helps. References
usable as ``program_ref`` / ``lm_ref``:

    dspy_flywheel.optimizer.fake_task:TicketRouter        the program (text -> label)
    dspy_flywheel.optimizer.fake_task:make_lm             demo-aware fake LM
    dspy_flywheel.optimizer.fake_task:make_oblivious_lm   ignores demos (optimizing can't help)

``make_lm`` reads ``FLYWHEEL_FAKE_LATENCY_S``, ``FLYWHEEL_FAKE_ERROR_RATE`` and
``FLYWHEEL_FAKE_SEED`` so a parent process can shape the LM of its compile child.
"""

from __future__ import annotations

import os
import random
import re
from collections.abc import Mapping
from typing import Any, Final

import dspy

from dspy_flywheel.lm import FakeEngine, input_fields
from dspy_flywheel.lm import make_lm as _make_lm
from dspy_flywheel.lm._convert import ChatMessage

KEYWORDS: Final[dict[str, str]] = {
    "refund": "billing",
    "invoice": "billing",
    "charge": "billing",
    "password": "account",
    "login": "account",
    "username": "account",
    "crash": "bug",
    "freezes": "bug",
    "error": "bug",
    "shipping": "logistics",
    "delivery": "logistics",
    "parcel": "logistics",
}
LABELS: Final = sorted(set(KEYWORDS.values()))
_TEMPLATES: Final = (
    "Hello, my {kw} is a problem since {day}, ticket {n}.",
    "Please help: {kw} issue on order {n} ({day}).",
    "Customer {n} writes about the {kw} again on {day}.",
)
_DAYS: Final = ("monday", "tuesday", "wednesday", "thursday", "friday")
_OUTPUT_FIELD: Final = re.compile(r"^\d+\. `(\w+)`", re.MULTILINE)


class TicketRouter(dspy.Module):  # type: ignore[misc]  # dspy is untyped
    """Route a support ticket to a team."""

    def __init__(self) -> None:
        super().__init__()
        self.route = dspy.Predict("text -> label")

    def forward(self, text: str) -> dspy.Prediction:
        return self.route(text=text)


def true_label(text: str) -> str | None:
    lowered = text.lower()
    for keyword, label in KEYWORDS.items():
        if keyword in lowered:
            return label
    return None


def tickets(n: int, seed: int = 0) -> list[dict[str, Any]]:
    """``n`` labeled tickets: ``{"inputs": {"text"}, "outputs": {"label"}}``."""
    rng = random.Random(seed)
    keywords = list(KEYWORDS)
    out = []
    for i in range(n):
        kw = keywords[rng.randrange(len(keywords))]
        text = _TEMPLATES[i % len(_TEMPLATES)].format(kw=kw, day=rng.choice(_DAYS), n=1000 + i)
        out.append({"inputs": {"text": text}, "outputs": {"label": KEYWORDS[kw]}})
    return out


def output_fields(messages: list[ChatMessage]) -> list[str]:
    """Output field names the system prompt asks for (``1. `name` (type)`` lines)."""
    system = next((m["content"] for m in messages if m["role"] == "system"), "")
    section = system.partition("Your output fields are:")[2].partition("All interactions")[0]
    return _OUTPUT_FIELD.findall(section) or ["label"]


def _answer(messages: list[ChatMessage], label: str) -> Mapping[str, Any]:
    """``label`` for the task; filler text for any other prompt (e.g. MIPROv2's proposers)."""
    return {
        name: label if name == "label" else f"A short {name.replace('_', ' ')}."
        for name in output_fields(messages)
    }


def demo_aware_responder(messages: list[ChatMessage]) -> Mapping[str, Any]:
    """Right label only when some demo in the prompt carries that label."""
    label = true_label(input_fields(messages).get("text", ""))
    demos = " ".join(m["content"] for m in messages if m["role"] == "assistant")
    return _answer(messages, label if label is not None and label in demos else "unknown")


def oblivious_responder(messages: list[ChatMessage]) -> Mapping[str, Any]:
    """Ignores demos: right for billing tickets only, whatever the prompt holds."""
    label = true_label(input_fields(messages).get("text", ""))
    return _answer(messages, "billing" if label == "billing" else "unknown")


def _engine(responder: Any) -> FakeEngine:
    return FakeEngine(
        responder,
        latency_s=float(os.environ.get("FLYWHEEL_FAKE_LATENCY_S", "0") or 0),
        error_rate=float(os.environ.get("FLYWHEEL_FAKE_ERROR_RATE", "0") or 0),
        seed=int(os.environ.get("FLYWHEEL_FAKE_SEED", "0") or 0),
    )


def make_lm() -> dspy.LM:
    return _make_lm(_engine(demo_aware_responder), name="fake/demo-aware")


def make_oblivious_lm() -> dspy.LM:
    return _make_lm(_engine(oblivious_responder), name="fake/oblivious")
