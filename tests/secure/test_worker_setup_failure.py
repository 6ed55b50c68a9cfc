"""A worker (SDK) whose Kafka settings cannot work: it keeps serving, logs one ERROR naming the
setting, keeps its events in the spool, and does not retry (the broker sees one failed login)."""

from __future__ import annotations

import asyncio
import logging
import time
from pathlib import Path

import dspy
import pytest

from dspy_flywheel.contracts.topics import Topics
from dspy_flywheel.sdk import WorkerSettings
from dspy_flywheel.settings import KafkaSettings
from tests.e2e.loop_worker import WORKERS
from tests.fixtures.fake_task import make_lm, tickets
from tests.secure.stack import LogMark, SecureStack

CALLS = 5


async def test_worker_with_a_wrong_password_stops_and_keeps_its_events(
    secure_stack: SecureStack, topics: Topics, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    wrong = tmp_path / "wrong-password"
    wrong.write_text("not-the-password\n")
    kafka = secure_stack.settings(KafkaSettings, KAFKA_SASL_PASSWORD_FILE=str(wrong))
    broker_log = LogMark.at_end(secure_stack.kafka_logs / "server.log")
    settings = WorkerSettings(
        topic_prefix=topics.prefix, spool_dir=tmp_path / "spool", kafka=kafka, linger_ms=20
    )
    caplog.set_level(logging.ERROR, logger="dspy_flywheel")
    with dspy.context(lm=make_lm()):
        worker = WORKERS["BootstrapFewShot"].create(settings=settings)
        try:
            for ticket in tickets(CALLS, seed=5):
                assert worker(**ticket["inputs"]).label is not None  # serving goes on
            deadline = time.monotonic() + 20
            while "KAFKA_SASL_PASSWORD" not in str(worker.stats().get("last_error")):
                assert time.monotonic() < deadline, worker.stats()
                await asyncio.sleep(0.1)
            failed = broker_log.new().count("Failed authentication")
            await asyncio.sleep(3)  # a retry loop would log in again (backoff starts at 0.2 s)
            assert broker_log.new().count("Failed authentication") == failed == 1
        finally:
            worker.close(timeout=5)
    stats = worker.stats()
    assert stats["broker"] == "down", stats
    assert stats["sent"] == 0, stats
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1, errors
    assert "KAFKA_SASL_PASSWORD" in errors[0], errors
    assert all(v not in errors[0] for v in secure_stack.passwords().values())
    assert stats["spool_pending"] >= CALLS  # nothing lost: sent once the settings are fixed
