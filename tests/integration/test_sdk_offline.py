"""A worker with no Kafka at all: calls work at normal speed, events wait in the spool.

Needs no stack: the bootstrap address is a local port nothing listens on.
"""

from __future__ import annotations

import statistics
import time
from pathlib import Path

import dspy
import pytest

from dspy_flywheel.lm import make_lm
from dspy_flywheel.sdk import WorkerSettings, dspy_worker
from dspy_flywheel.sdk.spool import Spool
from dspy_flywheel.sdk.spool_crypto import SpoolSealer, spool_cipher
from dspy_flywheel.settings import KafkaSettings
from tests.fixtures.fake_lm import FakeEngine
from tests.integration.helpers import unused_port


@dspy_worker("offline-classifier")
class Classify(dspy.Module):
    def __init__(self) -> None:
        super().__init__()
        self.predict = dspy.Predict("text -> label")

    def forward(self, text: str) -> dspy.Prediction:
        return self.predict(text=text)


def reopen_spool(worker: object, directory: Path) -> Spool:
    """The worker's spool read back with the worker's own spool key (key file or env)."""
    settings = worker.settings  # type: ignore[attr-defined]  # a dspy_worker instance
    key = settings.spool_key.get_secret_value() if settings.spool_key else None
    cipher = spool_cipher(key, settings.spool_key_path(worker.worker_id))  # type: ignore[attr-defined]
    return Spool(directory, max_bytes=10**9, segment_bytes=10**6, sealer=SpoolSealer(cipher))


@pytest.fixture
def engine() -> FakeEngine:
    engine = FakeEngine(lambda _m: {"label": "billing"}, latency_s=0.001)
    dspy.configure(lm=make_lm(engine))
    return engine


def test_calls_succeed_and_events_spool_without_kafka(engine: FakeEngine, tmp_path: Path) -> None:
    kafka = KafkaSettings(bootstrap_servers=f"127.0.0.1:{unused_port()}")
    started = time.monotonic()
    worker = Classify.create(settings=WorkerSettings(kafka=kafka, spool_dir=tmp_path / "spool"))
    assert time.monotonic() - started < 2.0  # nothing waits for the broker at start
    plain = Classify.build_program()
    plain_times, worker_times = [], []
    ids = []
    for i in range(300):
        t0 = time.perf_counter()
        plain(text=f"ticket {i}")
        t1 = time.perf_counter()
        ids.append(worker(text=f"ticket {i}").execution_id)
        worker_times.append(time.perf_counter() - t1)
        plain_times.append(t1 - t0)
    assert statistics.median(worker_times) < 1.5 * statistics.median(plain_times) + 0.002
    worker.feedback(ids[0], label="billing")

    closing = time.monotonic()
    worker.close(10)
    assert time.monotonic() - closing < 5.0
    stats = worker.stats()
    assert stats["broker"] == "down"
    assert "Unable to bootstrap" in str(stats["last_error"])
    assert stats["spooled"] == 301
    assert stats["overflow_dropped"] == 0

    spool = reopen_spool(worker, tmp_path / "spool")
    spooled = [m for m, _ in spool.read(1000)]
    assert [m.event_id for m in spooled[:300]] == ids  # in call order
    assert spooled[300].topic == "feedback"
    spool.close()


def test_a_full_spool_overflows_visibly(engine: FakeEngine, tmp_path: Path) -> None:
    kafka = KafkaSettings(bootstrap_servers=f"127.0.0.1:{unused_port()}")
    worker = Classify.create(
        settings=WorkerSettings(
            kafka=kafka,
            spool_dir=tmp_path,
            queue_max=5,
            spool_max_bytes=3_000,
            reload=False,
        )
    )
    for i in range(60):
        worker(text=f"ticket {i}")
    worker.close(5)
    stats = worker.stats()
    assert stats["overflow_dropped"] > 0  # counted, never silent
    assert stats["spooled"] + stats["overflow_dropped"] == 60


def test_a_full_queue_overflows_to_the_spool_in_call_order(
    engine: FakeEngine, tmp_path: Path
) -> None:
    """Regression: with a small queue, 1,300 of 1,500 events were dropped as "queue full"
    while the spool had room."""
    kafka = KafkaSettings(bootstrap_servers=f"127.0.0.1:{unused_port()}")
    worker = Classify.create(
        settings=WorkerSettings(
            kafka=kafka,
            spool_dir=tmp_path / "spool",
            queue_max=10,
            linger_ms=2_000,  # the loop drains rarely: callers outpace it
            reload=False,
        )
    )
    ids = [worker(text=f"ticket {i}").execution_id for i in range(1500)]
    worker.close(10)
    stats = worker.stats()
    assert stats["overflow_dropped"] == 0
    assert stats["spooled"] == 1500
    spool = reopen_spool(worker, tmp_path / "spool")
    assert [m.event_id for m, _ in spool.read(2000)] == ids
    spool.close()
