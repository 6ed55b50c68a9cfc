"""Kafka going away under a working worker, on a PRIVATE broker (the shared stack is untouched).

A second single-node Kafka is started with ``ops/kafka.sh`` under its own FLYWHEEL_STATE and
port, stopped and started again by the tests. Calls must neither fail nor wait on the broker;
every event must arrive exactly once after the broker (or the worker process) comes back.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import dspy
import pytest

from dspy_flywheel.bus.admin import ensure_topics
from dspy_flywheel.contracts.topics import Topics
from dspy_flywheel.lm import make_lm
from dspy_flywheel.sdk import Worker, WorkerSettings, dspy_worker
from dspy_flywheel.settings import KafkaSettings
from tests.fixtures.fake_lm import FakeEngine
from tests.integration.helpers import read_events, until

KAFKA_SH = Path(__file__).resolve().parents[2] / "ops" / "kafka.sh"

pytestmark = pytest.mark.slow


class PrivateBroker:
    def __init__(self, state: Path) -> None:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.env = {
            **os.environ,
            "FLYWHEEL_STATE": str(state),
            "FLYWHEEL_KAFKA_PORT": str(self.port),
        }
        self.kafka = KafkaSettings(bootstrap_servers=f"127.0.0.1:{self.port}")

    def _run(self, command: str) -> None:
        done = subprocess.run(
            [str(KAFKA_SH), command], env=self.env, capture_output=True, text=True
        )
        assert done.returncode == 0, f"ops/kafka.sh {command} failed:\n{done.stderr[-3000:]}"

    def up(self) -> None:
        self._run("up")

    def down(self) -> None:
        self._run("down")


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrivateBroker]:
    b = PrivateBroker(tmp_path_factory.mktemp("private-kafka"))
    b.up()
    try:
        yield b
    finally:
        b.down()


@dspy_worker("outage-classifier")
class Classify(dspy.Module):
    def __init__(self) -> None:
        super().__init__()
        self.predict = dspy.Predict("text -> label")

    def forward(self, text: str) -> dspy.Prediction:
        return self.predict(text=text)


@pytest.fixture
def fake_lm() -> None:
    # A sync fixture: dspy.configure may not be called from inside an async test task.
    dspy.configure(lm=make_lm(FakeEngine(lambda _m: {"label": "billing"}, latency_s=0.002)))


async def provisioned(broker: PrivateBroker, name: str) -> Topics:
    topics = Topics(prefix=f"{name}{os.urandom(4).hex()}-", partitions=2)
    await ensure_topics(broker.kafka, topics)
    return topics


async def test_broker_stopped_mid_run(broker: PrivateBroker, tmp_path: Path, fake_lm: None) -> None:
    await asyncio.to_thread(broker.up)
    topics = await provisioned(broker, "outage")
    worker: Worker = Classify.create(
        settings=WorkerSettings(
            kafka=broker.kafka,
            topic_prefix=topics.prefix,
            spool_dir=tmp_path,
        )
    )
    ids: list[str] = []
    before: list[float] = []
    during: list[float] = []
    stopper = threading.Thread(target=broker.down)
    try:
        for i in range(2000):
            if i == 500:
                stopper.start()
            started = time.perf_counter()
            ids.append(worker(text=f"ticket {i}").execution_id)  # raises if a call fails
            elapsed = time.perf_counter() - started
            if i < 500:
                before.append(elapsed)
            elif not stopper.is_alive():
                during.append(elapsed)  # the broker is fully down
        stopper.join()
        assert len(during) >= 300, "the broker took too long to stop for a meaningful test"
        stats = worker.stats()
        assert stats["spool_pending"] > 0
        assert stats["overflow_dropped"] == 0
        p50_before, p50_during = statistics.median(before), statistics.median(during)
        print(
            f"call p50 before {p50_before * 1e3:.2f} ms, while down {p50_during * 1e3:.2f} ms, "
            f"max while down {max(during) * 1e3:.1f} ms; spooled {stats['spool_pending']}"
        )
        assert max(during) < 2.0  # nowhere near Kafka's timeouts: nothing waits on the broker
        assert p50_during < 2 * p50_before + 0.005

        await asyncio.to_thread(broker.up)
        await until(
            lambda: worker.stats()["spool_pending"] == 0 and worker.stats()["outbox"] == 0,
            "the spool and the outbox drained",
            120,
            context=lambda: str(worker.stats()),
        )
    finally:
        worker.close(10)
    events = await read_events(broker.kafka, topics.executions, count=2000, within_s=60, settle=2)
    event_ids = [e.event_id for e in events]
    assert len(event_ids) == 2000
    assert len(set(event_ids)) == 2000  # zero duplicates
    assert set(event_ids) == set(ids)


CHILD = """
import os, sys, time
import dspy
from dspy_flywheel.lm import make_lm
from tests.fixtures.fake_lm import FakeEngine
from dspy_flywheel.sdk import WorkerSettings, dspy_worker
from dspy_flywheel.settings import KafkaSettings

dspy.configure(lm=make_lm(FakeEngine(lambda _m: {"label": "billing"})))

@dspy_worker("outage-classifier")
class Classify(dspy.Module):
    def __init__(self):
        super().__init__()
        self.predict = dspy.Predict("text -> label")

    def forward(self, text):
        return self.predict(text=text)

bootstrap, prefix, spool, count, ids_file, ending = sys.argv[1:7]
worker = Classify.create(settings=WorkerSettings(
    kafka=KafkaSettings(bootstrap_servers=bootstrap), topic_prefix=prefix, spool_dir=spool))
with open(ids_file, "a") as out:
    for i in range(int(count)):
        out.write(worker(text=f"ticket {i}").execution_id + "\\n")
if ending == "kill":  # wait until the events are in the spool file, then die without flushing
    while worker.stats()["spool_pending"] < int(count):
        time.sleep(0.05)
    print("SPOOLED", flush=True)
    time.sleep(600)
# ending == "exit": a normal exit; atexit closes the worker, which spools what is in memory
"""


def spool_from_children(args: list[str], ids_file: Path) -> None:
    """One child crashes (SIGKILL) with its events on disk, the next exits normally."""
    killed = subprocess.Popen(
        [*args, "600", str(ids_file), "kill"], stdout=subprocess.PIPE, text=True
    )
    try:
        assert killed.stdout is not None
        assert killed.stdout.readline().strip() == "SPOOLED"
    finally:
        killed.send_signal(signal.SIGKILL)  # a crash: no close(), no atexit
        killed.wait()
    exited = subprocess.run([*args, "400", str(ids_file), "exit"], capture_output=True, text=True)
    assert exited.returncode == 0, exited.stderr[-3000:]


async def test_worker_restarted_while_events_sit_in_the_spool(
    broker: PrivateBroker, tmp_path: Path, fake_lm: None
) -> None:
    await asyncio.to_thread(broker.up)
    topics = await provisioned(broker, "restart")
    await asyncio.to_thread(broker.down)
    script, spool, ids_file = tmp_path / "child.py", tmp_path / "spool", tmp_path / "ids.txt"
    script.write_text(CHILD)
    args = [sys.executable, str(script), f"127.0.0.1:{broker.port}", topics.prefix, str(spool)]
    await asyncio.to_thread(spool_from_children, args, ids_file)
    ids = ids_file.read_text().split()
    assert len(ids) == 1000

    await asyncio.to_thread(broker.up)
    worker = Classify.create(
        settings=WorkerSettings(
            kafka=broker.kafka,
            topic_prefix=topics.prefix,
            spool_dir=spool,
            reload=False,
        )
    )
    try:
        assert worker.stats()["spool_pending"] == 1000  # found on start
        await until(
            lambda: worker.stats()["spool_pending"] == 0,
            "the spool drained",
            120,
            context=lambda: str(worker.stats()),
        )
    finally:
        worker.close(10)
    events = await read_events(broker.kafka, topics.executions, count=1000, within_s=60, settle=2)
    event_ids = [e.event_id for e in events]
    assert len(event_ids) == 1000
    assert len(set(event_ids)) == 1000
    assert set(event_ids) == set(ids)
