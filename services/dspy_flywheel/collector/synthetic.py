"""Synthetic execution + feedback events (support-ticket triage) for tests, benchmarks, demos.

Every ticket text is unique (it carries an order number) and one in ``pii_every`` carries a
PII value of a rotating kind; :attr:`SyntheticSet.pii_values` lists the raw values used so a test
can prove none of them reached the database.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass, field

from dspy_flywheel.contracts.codec import Encoded, encode
from dspy_flywheel.contracts.ids import new_id

CATEGORIES = ("billing", "shipping", "returns", "account", "technical", "other")
_TEMPLATES = (
    "Hello, my order {order} has not arrived yet and tracking says it left the depot {days} "
    "days ago. {pii} Could you check what happened?",
    "I was charged twice for order {order} on my last statement, please refund one of the "
    "payments. {pii} Thanks in advance.",
    "The app crashes every time I open settings after updating to version 4.{days}.1, "
    "reference {order}. {pii}",
    "I want to return the shoes from order {order}; they are {days} sizes too small. {pii} "
    "What is the process?",
    "Please change the e-mail preferences on my account, ticket {order}. {pii} I keep "
    "getting newsletters.",
)
_FIRST = ("Maria", "James", "Aisha", "Chen", "Olga", "Pedro", "Fatima", "Liam")
_LAST = ("Garcia", "Smith", "Khan", "Wei", "Petrova", "Silva", "Haddad", "Murphy")
_CARDS = ("4111 1111 1111 1111", "5500 0000 0000 0004", "3400 0000 0000 009", "6011 0000 0000 0004")


def _pii(rng: random.Random, i: int) -> tuple[str, str]:
    """(sentence, raw value) of a rotating PII kind; raw values are unique per i."""
    first, last = rng.choice(_FIRST), rng.choice(_LAST)
    kind = i % 7
    if kind == 0:
        value = f"{first.lower()}.{last.lower()}{i}@example.com"
        return f"You can reach me at {value}.", value
    if kind == 1:
        value = f"+1 415 555 {i % 10000:04d}"
        return f"Call me back on {value}.", value
    if kind == 2:
        value = rng.choice(_CARDS)
        return f"The card used was {value}.", value
    if kind == 3:
        area = 100 + i % 600
        value = f"{665 if area == 666 else area:03d}-{10 + i % 89:02d}-{1000 + i % 8999:04d}"
        return f"My SSN is {value} if you need it.", value
    if kind == 4:
        value = f"10.{i % 250}.{(i // 250) % 250}.{7 + i % 200}"
        return f"My router IP is {value}.", value
    if kind == 5:
        value = f"sk-{rng.getrandbits(128):032x}"
        return f"Our API key {value} stopped working.", value
    return f"My name is {first} {last}.", f"{first} {last}"


@dataclass
class SyntheticSet:
    executions: list[Encoded] = field(default_factory=list)
    feedback: list[Encoded] = field(default_factory=list)
    keys: list[str] = field(default_factory=list)  # worker id per execution (Kafka key)
    execution_ids: list[str] = field(default_factory=list)
    pii_values: list[str] = field(default_factory=list)


def make_events(
    n: int,
    *,
    workers: int = 4,
    worker_prefix: str = "triage",
    pii_every: int = 3,
    seed: int = 7,
    ts_ms: int = 1_760_000_000_000,
) -> SyntheticSet:
    """``n`` successful executions, each with one labeled feedback event."""
    rng = random.Random(seed)
    out = SyntheticSet()
    for i in range(n):
        worker = f"{worker_prefix}-{i % workers}"
        pii, raw = _pii(rng, i) if pii_every and i % pii_every == 0 else ("", "")
        if raw:
            out.pii_values.append(raw)
        ticket = rng.choice(_TEMPLATES).format(
            order=f"A{i:07d}-{rng.randint(10, 99)}", days=rng.randint(2, 9), pii=pii
        )
        category = rng.choice(CATEGORIES)
        predicted = category if rng.random() < 0.8 else rng.choice(CATEGORIES)
        execution_id = new_id()
        out.executions.append(
            encode(
                "ExecutionRecorded",
                {
                    "worker_id": worker,
                    "worker_type": "support_triage",
                    "program_version": "v1",
                    "execution_id": execution_id,
                    "inputs_json": json.dumps({"ticket": ticket}),
                    "outputs_json": json.dumps({"category": predicted}),
                    "success": True,
                    "error": None,
                    "latency_ms": 20.0 + rng.random() * 50,
                    "lm_calls": 1,
                    "prompt_tokens": 120,
                    "completion_tokens": 6,
                    "metric_score": None,
                    "timestamp_ms": ts_ms + i,
                },
            )
        )
        out.feedback.append(
            encode(
                "FeedbackRecorded",
                {
                    "execution_id": execution_id,
                    "worker_id": worker,
                    "label": json.dumps({"category": category}),
                    "score": 1.0 if predicted == category else 0.0,
                    "source": "agent",
                    "timestamp_ms": ts_ms + i + 500,
                },
            )
        )
        out.keys.append(worker)
        out.execution_ids.append(execution_id)
    return out


@dataclass(frozen=True)
class Malformed:
    topic_kind: str  # "executions" | "feedback"
    value: bytes | None
    headers: list[tuple[str, bytes]]
    reason: str  # the dlq_reason the collector must give


def make_malformed(n: int, *, seed: int = 11) -> list[Malformed]:
    """``n`` messages the collector must dead-letter, cycling through every kind of defect."""
    rng = random.Random(seed)
    good = make_events(1, seed=seed)
    execution, feedback = good.executions[0], good.feedback[0]
    out: list[Malformed] = []
    for i in range(n):
        kind = i % 7
        eid = [("event_id", new_id().encode())]
        if kind == 0:
            out.append(
                Malformed("executions", rng.randbytes(rng.randint(0, 80)), eid, "corrupt_payload")
            )
        elif kind == 1:
            body = b"\xc3\x01" + rng.randbytes(8) + execution.value[10:]
            out.append(Malformed("feedback", body, eid, "unknown_schema"))
        elif kind == 2:
            cut = execution.value[: rng.randint(11, len(execution.value) - 1)]
            out.append(Malformed("executions", cut, eid, "corrupt_payload"))
        elif kind == 3:
            bad = encode(
                "ExecutionRecorded",
                {
                    "worker_id": "triage-0",
                    "worker_type": "support_triage",
                    "execution_id": new_id(),
                    "inputs_json": "{not json",
                    "outputs_json": None,
                    "success": True,
                    "latency_ms": 1.0,
                    "timestamp_ms": 1,
                },
            )
            out.append(Malformed("executions", bad.value, bad.headers, "invalid_inputs"))
        elif kind == 4:
            out.append(Malformed("executions", feedback.value, eid, "unexpected_event_type"))
        elif kind == 5:
            bad = encode(
                "FeedbackRecorded",
                {
                    "execution_id": new_id(),
                    "worker_id": "triage-0",
                    "label": None,
                    "score": 7.5,
                    "timestamp_ms": 1,
                },
            )
            out.append(Malformed("feedback", bad.value, bad.headers, "invalid_score"))
        else:
            out.append(Malformed("feedback", None, [], "corrupt_payload"))  # no value, no id
    return out
