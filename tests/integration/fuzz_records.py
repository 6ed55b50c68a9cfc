"""Property-based mutation of valid records, each labelled bad or valid by construction.

``mutants(kind, n, rng)`` starts from valid records of the event type topic ``kind`` carries
and applies one mutation each, drawn at random. A mutation is bad when no consumer may accept
the result whatever else the record holds (not Avro, truncated, trailing bytes, an unknown
schema, another event type, a NUL, an empty or over-long id, JSON nested past the limit or
holding an escaped NUL, a timestamp outside 1970-9999, a malformed event_id header, content its
topic's consumer refuses, a value too big for its field); it is valid when it only changes what
any value may be (free text, numbers, new ids, unknown or missing optional headers). The oracle
is the label, never the consumers' own code.
"""

from __future__ import annotations

import json
import random
import string
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from dspy_flywheel.contracts.codec import encode
from dspy_flywheel.contracts.events import event_from_record
from dspy_flywheel.contracts.topics import CARRIES, DLQ_OWNERS
from tests.integration import hostile

Headers = list[tuple[str, bytes]]
KINDS = tuple(DLQ_OWNERS)  # every consumed topic
EVENT_TYPES = {kind: CARRIES[kind] for kind in KINDS}
IDS = ("worker_id", "execution_id", "job_id", "instance_id", "command_id")
KEYED_BY_WORKER = ("trigger-config", "rollout-config")  # compacted: the key is the worker id
JSON_FIELDS = ("inputs_json", "outputs_json", "optimizer_params_json", "evidence_json")
FREE_TEXT = {  # a field of each kind whose content is anyone's business
    "executions": "error",
    "feedback": "label",
    "optimization-requests": "requested_by",
    "optimization-status": "message",
    "program-updated": "optimizer",
    "program-acks": "reason",
    "trigger-config": "updated_by",
    "program-rollouts": "reason",
    "rollout-config": "updated_by",
    "rollout-commands": "reason",
}


@dataclass(frozen=True)
class Mutant:
    kind: str
    value: bytes | None
    key: bytes | None
    headers: Headers
    bad: bool
    how: str


def base_record(kind: str, worker: str) -> dict[str, Any]:
    now = hostile.now_ms()
    if kind == "executions":
        return hostile.execution(worker)
    if kind == "feedback":
        return hostile.feedback(worker, uuid.uuid4().hex)
    if kind == "optimization-requests":
        return hostile.request(worker)
    if kind == "optimization-status":
        job = uuid.uuid4().hex
        return {
            "job_id": job,
            "worker_id": worker,
            "status": "running",
            "progress": 0.5,
            "message": None,
            "details_json": "{}",
            "timestamp_ms": now,
        }
    if kind == "program-updated":
        return {
            "worker_id": worker,
            "version": 1,
            "program_state_json": "{}",
            "signature_json": "{}",
            "optimizer": "BootstrapFewShot",
            "job_id": None,
            "holdout_before": None,
            "holdout_after": None,
            "timestamp_ms": now,
        }
    if kind == "program-acks":
        return {
            "worker_id": worker,
            "instance_id": uuid.uuid4().hex,
            "version": 1,
            "status": "serving",
            "reason": None,
            "timestamp_ms": now,
        }
    if kind == "program-rollouts":
        return {
            "worker_id": worker,
            "sequence": 1,
            "decision": "promote",
            "stable_version": 1,
            "candidate_version": None,
            "candidate_share": 0.0,
            "pinned": False,
            "reason": "fuzz",
            "evidence_json": "{}",
            "decided_by": "fuzz",
            "command_id": None,
            "job_id": None,
            "timestamp_ms": now,
        }
    if kind == "rollout-config":
        return {
            "worker_id": worker,
            "enabled": True,
            "share": 0.1,
            "confidence": 0.95,
            "margin": 0.02,
            "min_samples": 50,
            "max_samples": 20_000,
            "max_duration_s": 86_400,
            "updated_by": "fuzz",
            "timestamp_ms": now,
        }
    if kind == "rollout-commands":
        return {
            "command_id": uuid.uuid4().hex,
            "worker_id": worker,
            "command": "unpin",
            "version": None,
            "requested_by": "fuzz",
            "reason": None,
            "timestamp_ms": now,
        }
    return {  # trigger-config: manual, so valid mutants never start optimizations
        "worker_id": worker,
        "enabled": True,
        "policy": "manual",
        "threshold": 0.8,
        "window_size": 50,
        "window_seconds": None,
        "min_examples": 20,
        "min_new_examples": 0,
        "cooldown_seconds": 600,
        "interval_seconds": None,
        "cron": None,
        "optimizer": "BootstrapFewShot",
        "optimizer_params_json": "{}",
        "updated_by": "fuzz",
        "worker_type": "router",
        "program_ref": None,
        "metric_ref": None,
        "timestamp_ms": now,
    }


# -- what a mutation returns: (record or None, wire override or None, key, headers, bad, how)
Draft = tuple[dict[str, Any], bytes | None, bytes | None, Headers | None, bool]
Mutation = Callable[[random.Random, str, dict[str, Any], bytes | None], Draft]


def _text(rng: random.Random, n: int) -> str:
    alphabet = string.ascii_letters + string.digits + " .,;:!?'\"-_/\\{}[]éü中😀\t\n"
    return "".join(rng.choice(alphabet) for _ in range(n))


def _ids_of(record: dict[str, Any]) -> list[str]:
    return [f for f in IDS if isinstance(record.get(f), str)]


def _wire(record: dict[str, Any], kind: str) -> tuple[bytes, Headers]:
    enc = encode(event_from_record(EVENT_TYPES[kind], record))
    return enc.value, list(enc.headers)


def m_garbage(rng: random.Random, kind: str, r: dict[str, Any], key: bytes | None) -> Draft:
    junk = rng.choice([rng.randbytes(rng.randrange(0, 200)), b"not avro " + rng.randbytes(8)])
    return r, junk, key, None, True


def m_truncated(rng: random.Random, kind: str, r: dict[str, Any], key: bytes | None) -> Draft:
    value, _ = _wire(r, kind)
    return r, value[: rng.randrange(0, len(value))], key, None, True


def m_trailing(rng: random.Random, kind: str, r: dict[str, Any], key: bytes | None) -> Draft:
    value, _ = _wire(r, kind)
    return r, value + rng.randbytes(rng.randrange(1, 16)), key, None, True


def m_fingerprint(rng: random.Random, kind: str, r: dict[str, Any], key: bytes | None) -> Draft:
    value = bytearray(_wire(r, kind)[0])
    value[2 + rng.randrange(8)] ^= 1 + rng.randrange(255)
    return r, bytes(value), key, None, True


def m_marker(rng: random.Random, kind: str, r: dict[str, Any], key: bytes | None) -> Draft:
    value = _wire(r, kind)[0]
    return r, rng.randbytes(2).replace(b"\xc3", b"\xc4") + value[2:], key, None, True


def m_wrong_type(rng: random.Random, kind: str, r: dict[str, Any], key: bytes | None) -> Draft:
    other = rng.choice([k for k in KINDS if k != kind])
    value, headers = _wire(base_record(other, r["worker_id"]), other)
    return r, value, key, headers, True


def m_nul(rng: random.Random, kind: str, r: dict[str, Any], key: bytes | None) -> Draft:
    fields = [f for f, v in r.items() if isinstance(v, str)]
    field = rng.choice(fields)
    at = rng.randrange(len(r[field]) + 1)
    return {**r, field: r[field][:at] + "\x00" + r[field][at:]}, None, key, None, True


def m_bad_id(rng: random.Random, kind: str, r: dict[str, Any], key: bytes | None) -> Draft:
    field = rng.choice(_ids_of(r))
    value = rng.choice(["", "   ", " " + r[field], "x" * rng.randrange(257, 2000), "a\x07b"])
    return {**r, field: value}, None, key, None, True


def m_deep_json(rng: random.Random, kind: str, r: dict[str, Any], key: bytes | None) -> Draft:
    fields = [f for f in r if f.endswith("_json")]
    if not fields:
        return m_nul(rng, kind, r, key)
    depth = rng.choice([65, 100, 1000, 50_000])
    text = rng.choice([("[", "]"), ('{"a":', "}")])
    deep = text[0] * depth + "1" + text[1] * depth
    escaped = '{"a": "x\\u0000"}'
    return {**r, rng.choice(fields): rng.choice([deep, escaped])}, None, key, None, True


def m_timestamp(rng: random.Random, kind: str, r: dict[str, Any], key: bytes | None) -> Draft:
    value = rng.choice([-1, -(2**40), 2**62, 253_402_300_800_000, 2**63 - 1])
    return {**r, "timestamp_ms": value}, None, key, None, True


def m_event_id(rng: random.Random, kind: str, r: dict[str, Any], key: bytes | None) -> Draft:
    value, headers = _wire(r, kind)
    bad = rng.choice([b"\xff\xfe\xfd", b"", b"id with space", b"x" * 300, b"\x00", "é".encode()])
    headers = [(k, bad if k == "event_id" else v) for k, v in headers]
    return r, value, key, headers, True


def m_content(rng: random.Random, kind: str, r: dict[str, Any], key: bytes | None) -> Draft:
    """What the topic's own consumer refuses."""
    changes: list[dict[str, Any]] = {
        "executions": [
            {"inputs_json": "not json"},
            {"inputs_json": "[1, 2]"},
            {"outputs_json": "{oops"},
            {"metric_score": 1.5},
        ],
        "feedback": [{"label": None, "score": None}, {"score": 2.0}, {"score": -0.5}],
        "optimization-requests": [
            {"optimizer_params_json": "[1]"},
            {"optimizer_params_json": "{bad"},
        ],
        "optimization-status": [{"worker_id": "", "status": "running"}],
        "program-updated": [
            {"version": 0},
            {"version": -3},
            {"program_state_json": "nope"},
            {"signature_json": "[]"},
        ],
        "program-acks": [{"instance_id": ""}],
        "trigger-config": [
            {"threshold": 1.5},
            {"window_size": 0},
            {"policy": "periodic", "cron": "0 0 30 2 *"},
            {"optimizer": "NoSuchOpt"},
            {"policy": "sometimes"},
        ],
        "program-rollouts": [
            {"candidate_share": 1.5},
            {"candidate_share": -0.1},
            {"candidate_version": None, "candidate_share": 0.5},
        ],
        "rollout-config": [{"share": 0.0}, {"share": 1.5}, {"confidence": 0.3}],
        "rollout-commands": [{"command": "explode"}, {"command": "pin", "version": 0}],
    }[kind]
    return {**r, **rng.choice(changes)}, None, key, None, True


_NAMES = (
    "status",
    "policy",
    "optimizer",
    "source",
    "worker_type",
    "requested_by",
    "decision",
    "updated_by",
)


def m_too_big(rng: random.Random, kind: str, r: dict[str, Any], key: bytes | None) -> Draft:
    """~900 KB in one field: not JSON for inputs, too long for a name (cut to fit the DLQ)."""
    field = "inputs_json" if kind == "executions" else next(f for f in _NAMES if f in r)
    return {**r, field: "x" * 900_000}, None, key, None, True


def m_key(rng: random.Random, kind: str, r: dict[str, Any], key: bytes | None) -> Draft:
    """Another key: only the compacted config topics read it (it must be the worker id)."""
    keyed = kind in KEYED_BY_WORKER
    return r, None, (b"someone-else" if keyed else rng.randbytes(6)), None, keyed


def v_free_text(rng: random.Random, kind: str, r: dict[str, Any], key: bytes | None) -> Draft:
    return {**r, FREE_TEXT[kind]: _text(rng, rng.randrange(1, 200))}, None, key, None, False


def v_numbers(rng: random.Random, kind: str, r: dict[str, Any], key: bytes | None) -> Draft:
    changes = {
        "executions": {"latency_ms": rng.uniform(0, 1e6), "lm_calls": rng.randrange(2**31)},
        "feedback": {"score": rng.random(), "label": None},
        "optimization-requests": {"evidence_json": json.dumps({"n": rng.random()})},
        "optimization-status": {"progress": rng.random()},
        "program-updated": {"version": rng.randrange(2, 2**31), "holdout_after": rng.random()},
        "program-acks": {"version": rng.randrange(1, 2**31)},
        "trigger-config": {"window_size": rng.randrange(1, 100_000), "threshold": rng.random()},
        "program-rollouts": {"sequence": rng.randrange(2**40), "stable_version": 2},
        "rollout-config": {"share": rng.uniform(0.01, 0.99), "margin": rng.uniform(0, 0.1)},
        "rollout-commands": {"version": rng.randrange(1, 2**31), "command": "pin"},
    }[kind]
    return {**r, **changes}, None, key, None, False


def v_headers(rng: random.Random, kind: str, r: dict[str, Any], key: bytes | None) -> Draft:
    value, headers = _wire(r, kind)
    choice = rng.randrange(3)
    if choice == 0:
        headers.append(("traceparent", rng.randbytes(20)))  # malformed: dropped, not an error
    elif choice == 1:
        headers.append((f"x-{uuid.uuid4().hex[:6]}", rng.randbytes(rng.randrange(50))))
    else:
        headers = [(k, v) for k, v in headers if k not in ("event_id", "traceparent")]
    return r, value, key, headers, False


def v_new_ids(rng: random.Random, kind: str, r: dict[str, Any], key: bytes | None) -> Draft:
    fresh = {f: f"{f[:3]}-{uuid.uuid4().hex}" for f in _ids_of(r) if f != "worker_id"}
    return {**r, **fresh}, None, key, None, False


BAD: tuple[Mutation, ...] = (
    m_garbage,
    m_truncated,
    m_trailing,
    m_fingerprint,
    m_marker,
    m_wrong_type,
    m_nul,
    m_bad_id,
    m_deep_json,
    m_timestamp,
    m_event_id,
    m_content,
    m_key,  # bad on the config topic only: it says so itself
)
VALID: tuple[Mutation, ...] = (v_free_text, v_numbers, v_headers, v_new_ids)


def mutants(
    kind: str, n: int, rng: random.Random, workers: list[str], *, big: int = 2
) -> list[Mutant]:
    """``n`` mutants of ``kind``, about 70 % of them from the bad mutations; the first
    ``big`` are ~900 KB (bad)."""
    out: list[Mutant] = []
    for i in range(n):
        worker = rng.choice(workers)
        if i < big:
            mutation: Mutation = m_too_big
        else:
            mutation = rng.choice(BAD) if rng.random() < 0.7 else rng.choice(VALID)
        record, wire, key, headers, bad = mutation(rng, kind, base_record(kind, worker), b"")
        value, own_headers = _wire(record, kind) if wire is None else (wire, [])
        if headers is None:
            headers = own_headers if wire is None else _wire(record, kind)[1]
        out.append(Mutant(kind, value, key or worker.encode(), headers, bad, mutation.__name__))
    return out
