"""Hostile-input helpers: valid records to start from, sending raw bytes, reading DLQs back.

A record under test is sent as raw bytes with explicit headers (``send_raw``), so a test can
send what no well-behaved producer would: NUL characters, non-UTF-8 headers, 50,000-deep JSON.
``dead_letters`` counts the letters of a topic by the ``topic:partition:offset`` they came
from, so "in its DLQ exactly once" is one lookup.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
import uuid
from collections import Counter
from typing import Any

from aiokafka import AIOKafkaProducer

from dspy_flywheel.bus.letters import read_letters
from dspy_flywheel.contracts.codec import encode
from dspy_flywheel.contracts.events import event_from_record
from dspy_flywheel.settings import KafkaSettings

Headers = list[tuple[str, bytes]]


def now_ms() -> int:
    return int(time.time() * 1000)


def execution(worker: str, execution_id: str | None = None, **changes: Any) -> dict[str, Any]:
    execution_id = execution_id or uuid.uuid4().hex
    record: dict[str, Any] = {
        "worker_id": worker,
        "worker_type": "router",
        "program_version": None,
        "execution_id": execution_id,
        # distinct inputs: the collector drops an input it already stored for the worker
        "inputs_json": json.dumps({"text": f"invoice {execution_id} is wrong"}),
        "outputs_json": json.dumps({"label": "billing"}),
        "success": True,
        "error": None,
        "latency_ms": 5.0,
        "lm_calls": 1,
        "prompt_tokens": 10,
        "completion_tokens": 2,
        "metric_score": None,
        "timestamp_ms": now_ms(),
    }
    record.update(changes)
    return record


def feedback(worker: str, execution_id: str, **changes: Any) -> dict[str, Any]:
    record: dict[str, Any] = {
        "execution_id": execution_id,
        "worker_id": worker,
        "label": "billing",
        "score": None,
        "source": "test",
        "timestamp_ms": now_ms(),
    }
    record.update(changes)
    return record


def request(worker: str, **changes: Any) -> dict[str, Any]:
    record: dict[str, Any] = {
        "job_id": uuid.uuid4().hex,
        "worker_id": worker,
        "reason": "manual",
        "optimizer": "BootstrapFewShot",
        "optimizer_params_json": "{}",
        "evidence_json": "{}",
        "requested_by": "test",
        "program_ref": None,
        "metric_ref": None,
        "timestamp_ms": now_ms(),
    }
    record.update(changes)
    return record


def encoded(
    event_type: str, record: dict[str, Any], **header_changes: bytes
) -> tuple[bytes, Headers]:
    """The wire value and headers of ``record``; ``header_changes`` replace header values."""
    enc = encode(event_from_record(event_type, record))
    headers = [(k, header_changes.get(k, v)) for k, v in enc.headers]
    return enc.value, headers


async def send_raw(
    producer: AIOKafkaProducer,
    topic: str,
    value: bytes | None,
    headers: Headers,
    key: bytes | None = None,
) -> str:
    """Send as is; returns the record's ``topic:partition:offset``."""
    meta = await producer.send_and_wait(topic, value, key=key, headers=headers)
    return f"{meta.topic}:{meta.partition}:{meta.offset}"


async def send_event(
    producer: AIOKafkaProducer,
    topic: str,
    event_type: str,
    record: dict[str, Any],
    **headers: bytes,
) -> str:
    value, hdrs = encoded(event_type, record, **headers)
    key = record.get("worker_id")
    return await send_raw(producer, topic, value, hdrs, key.encode() if key else None)


async def dead_letters(kafka: KafkaSettings, topic: str) -> Counter[str]:
    """How many letters ``topic``'s DLQ holds per source ``topic:partition:offset``."""
    return Counter(letter.source for letter in await read_letters(kafka, topic))


async def run_cli(env: dict[str, str], *args: str) -> tuple[int, str, str]:
    """``flywheel ARGS`` in a subprocess; (exit code, stdout, stderr)."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "dspy_flywheel.cli",
        *args,
        env={**os.environ, **env},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 90)
    assert proc.returncode is not None
    return proc.returncode, out.decode(errors="replace"), err.decode(errors="replace")
