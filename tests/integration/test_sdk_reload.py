"""Hot reload on the real broker: latency, refusals, atomic swaps, catch-up, pin / rollback."""

from __future__ import annotations

import asyncio
import json
import re
import statistics
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeAlias

import dspy
import pytest
from aiokafka import AIOKafkaProducer

from dspy_flywheel.bus.publish import publish
from dspy_flywheel.contracts.topics import Topics
from dspy_flywheel.lm import make_lm
from dspy_flywheel.sdk import Worker, WorkerSettings, dspy_worker
from dspy_flywheel.settings import KafkaSettings
from tests.fixtures.fake_lm import FakeEngine
from tests.fixtures.sdk_worker import wait_ready
from tests.integration.helpers import program_updated_event, read_events, until

_VERSION_MARK = re.compile(r"-V(\d+)(?!\d)")


class Classify(dspy.Module):
    def __init__(self) -> None:
        super().__init__()
        self.predict = dspy.Predict("text -> label")

    def forward(self, text: str) -> dspy.Prediction:
        return self.predict(text=text)


ClassifyWorker = dspy_worker("router")(Classify)


class Renamed(dspy.Module):
    def __init__(self) -> None:
        super().__init__()
        self.predict = dspy.Predict("text -> category")


def version_of(n: int) -> Classify:
    """Instruction and both demos name version ``n``: a prompt shows which version built it."""
    program = Classify()
    program.predict.signature = program.predict.signature.with_instructions(f"Route it. INSTR-V{n}")
    program.predict.demos = [
        dspy.Example(text=f"demo-0-V{n}", label=f"billing-V{n}"),
        dspy.Example(text=f"demo-1-V{n}", label=f"tech-V{n}"),
    ]
    return program


class Prompts:
    """Fake LM that keeps every prompt it was sent."""

    def __init__(self) -> None:
        self.seen: list[str] = []
        self._lock = threading.Lock()
        self.engine = FakeEngine(self._answer)

    def _answer(self, messages: list[dict[str, str]]) -> dict[str, str]:
        with self._lock:
            self.seen.append(json.dumps(messages))
        return {"label": "billing"}

    def last(self) -> str:
        with self._lock:
            return self.seen[-1] if self.seen else ""


@pytest.fixture
def prompts() -> Prompts:
    p = Prompts()
    dspy.configure(lm=make_lm(p.engine))
    return p


Starter: TypeAlias = Callable[[], Worker]


@pytest.fixture
def start(kafka_settings: KafkaSettings, topics: Topics, tmp_path: Path) -> Iterator[Starter]:
    """Starts a worker of ``router`` caught up with program-updated; each is closed after."""
    started: list[Worker] = []

    def start_worker() -> Worker:
        settings = WorkerSettings(
            kafka=kafka_settings, topic_prefix=topics.prefix, spool_dir=tmp_path
        )
        started.append(worker := ClassifyWorker.create(settings=settings))
        assert wait_ready(worker, 30), "did not catch up with program-updated"
        return worker

    yield start_worker
    for worker in started:
        worker.close(5)


async def send_program(
    producer: AIOKafkaProducer,
    topics: Topics,
    version: int,
    program: dspy.Module | None = None,
    **kw: Any,
) -> None:
    event = program_updated_event("router", version, program or version_of(version), **kw)
    await publish(producer, topics.program_updated, "router", event)


async def acks(kafka: KafkaSettings, topics: Topics, count: int) -> list[dict[str, Any]]:
    return [
        e.event.to_record()
        for e in await read_events(kafka, topics.program_acks, count=count, within_s=30)
    ]


async def test_published_program_serves_within_a_second(
    prompts: Prompts,
    kafka_settings: KafkaSettings,
    topics: Topics,
    producer: AIOKafkaProducer,
    start: Starter,
) -> None:
    worker = start()
    latencies = []
    for n in range(1, 21):
        started = time.monotonic()
        await send_program(producer, topics, n)
        while f"demo-0-V{n}" not in prompts.last():  # its demos appear in the next prompt
            assert time.monotonic() - started < 10, f"version {n} not serving after 10 s"
            await asyncio.sleep(0.005)
            worker(text="is my invoice late?")
        latencies.append(time.monotonic() - started)
        assert worker.version == n
    p50 = statistics.median(latencies)
    print(
        f"program-updated -> serving: p50 {p50 * 1000:.0f} ms, max {max(latencies) * 1000:.0f} ms"
    )
    assert p50 < 1.0
    records = await acks(kafka_settings, topics, 20)
    assert [(r["version"], r["status"]) for r in records] == [(n, "serving") for n in range(1, 21)]
    assert {r["instance_id"] for r in records} == {worker.instance_id}


async def test_renamed_field_is_refused_and_the_old_program_keeps_serving(
    prompts: Prompts,
    kafka_settings: KafkaSettings,
    topics: Topics,
    producer: AIOKafkaProducer,
    start: Starter,
) -> None:
    worker = start()
    await send_program(producer, topics, 1)
    await until(lambda: worker.version == 1, "version 1", 10)
    await send_program(producer, topics, 2, Renamed())
    await send_program(
        producer,
        topics,
        3,
        version_of(3),
        signature={"predict": {"inputs": ["text"], "outputs": ["category"]}},
    )
    records = await acks(kafka_settings, topics, 3)
    assert [(r["version"], r["status"]) for r in records] == [
        (1, "serving"),
        (2, "refused"),
        (3, "refused"),
    ]
    assert "category" in records[1]["reason"]
    assert "category" in records[2]["reason"]
    assert worker.version == 1
    worker(text="still there?")
    assert "demo-0-V1" in prompts.last()


async def test_concurrent_calls_during_50_swaps_never_see_a_mixed_program(
    prompts: Prompts,
    topics: Topics,
    producer: AIOKafkaProducer,
    start: Starter,
) -> None:
    worker = start()
    await send_program(producer, topics, 1)
    await until(lambda: worker.version == 1, "version 1", 10)
    stop = threading.Event()
    errors: list[BaseException] = []

    def call() -> None:
        while not stop.is_set():
            try:
                worker(text="where is my refund")
            except BaseException as exc:  # surfaced below
                errors.append(exc)
                return

    threads = [threading.Thread(target=call) for _ in range(4)]
    for t in threads:
        t.start()
    try:
        for n in range(2, 52):
            await send_program(producer, topics, n)
            await asyncio.sleep(0.02)
        await until(lambda: worker.version == 51, "version 51", 20)
        await asyncio.sleep(0.2)
    finally:
        stop.set()
        for t in threads:
            t.join()
    assert errors == []
    served = set()
    for prompt in prompts.seen[1:]:  # every prompt is entirely one version
        versions = set(_VERSION_MARK.findall(prompt))
        assert len(versions) == 1, prompt[:400]
        assert prompt.count("demo-") == 2
        assert "INSTR-V" in prompt
        served |= versions
    assert len(served) > 10, f"calls saw only versions {sorted(served)}"


async def test_a_new_instance_catches_up_and_can_roll_back(
    prompts: Prompts,
    kafka_settings: KafkaSettings,
    topics: Topics,
    producer: AIOKafkaProducer,
    start: Starter,
) -> None:
    for n in (1, 2, 3):
        await send_program(producer, topics, n)
    await send_program(producer, topics, 4, Renamed())  # newest, but does not fit
    worker = start()
    assert worker.version == 3
    assert set(worker.stats()["known_versions"]) >= {1, 2, 3}
    worker(text="x")
    assert "demo-0-V3" in prompts.last()

    assert worker.rollback() == 2
    assert worker.pinned == 2
    await send_program(producer, topics, 5)
    records = await acks(kafka_settings, topics, 4)
    assert [(r["version"], r["status"]) for r in records] == [
        (4, "refused"),
        (3, "serving"),
        (2, "rolled_back"),
        (2, "pinned"),
    ]
    assert worker.version == 2
    assert worker.unpin() == 5
    assert worker.pin(1) == 1
    worker(text="x")
    assert "demo-0-V1" in prompts.last()
    assert worker.pin("code") is None
    worker(text="x")
    assert "demo-" not in prompts.last()


async def test_a_published_cascade_answers_on_the_worker_until_a_version_without_one(
    prompts: Prompts,
    topics: Topics,
    producer: AIOKafkaProducer,
    start: Starter,
) -> None:
    """The default optimizer's extras (retrieval index, label model) travel on program-updated
    through the broker and serve on the worker; a later version without them clears them."""
    from dspy_flywheel.compile.strategies import RetrievalCascade
    from dspy_flywheel.tasks import get_task

    rows = [
        dspy.Example(text=ex.ticket, label=ex.label).with_inputs("text")
        for ex in get_task("classification").examples
    ]
    train, unseen = rows[:120], rows[120:]
    compiled = RetrievalCascade(k=2).compile(Classify(), trainset=train)
    cascade = compiled.predict.cascade
    assert cascade is not None, "120 rows over 4 classes get a label model"
    sure = next(ex for ex in unseen if cascade.answer({"text": ex.text}))
    unsure = next(ex for ex in unseen if not cascade.answer({"text": ex.text}))
    worker = start()
    await send_program(producer, topics, 1, compiled)
    await until(lambda: worker.version == 1, "version 1", 10)

    calls = len(prompts.seen)
    assert worker(text=sure.text).label == cascade.answer({"text": sure.text})["label"]
    assert len(prompts.seen) == calls, "a confident call reached the LM"
    worker(text=unsure.text)
    assert len(prompts.seen) == calls + 1
    nearest = compiled.predict.retrieval.nearest({"text": unsure.text}, 1)[0]["text"]
    assert json.dumps(nearest)[1:-1] in prompts.last(), "the retrieved demo is not in the prompt"

    await send_program(producer, topics, 2)  # instruction and demos only: no extras
    await until(lambda: worker.version == 2, "version 2", 10)
    worker(text=sure.text)
    assert len(prompts.seen) == calls + 2, "the cascade outlived its version"
    assert "demo-0-V2" in prompts.last()
    assert json.dumps(nearest)[1:-1] not in prompts.last()


async def test_a_version_learned_from_long_rows_fits_the_bus_and_serves(
    prompts: Prompts,
    kafka_settings: KafkaSettings,
    topics: Topics,
    producer: AIOKafkaProducer,
    start: Starter,
) -> None:
    """120 labeled rows of 10 KB (1.2 MB of text): the default optimizer samples its retrieval
    pool and caps its label model, so the version is one Kafka message (1 MB by default)."""
    import random

    from dspy_flywheel.compile.strategies import RetrievalCascade

    rng = random.Random(0)
    words = ["".join(rng.choices("abcdefghij", k=rng.randint(3, 9))) for _ in range(20_000)]
    rows = [
        dspy.Example(
            text=f"team{i % 4} " + " ".join(rng.choices(words, k=1600)), label=f"team{i % 4}"
        ).with_inputs("text")
        for i in range(120)
    ]
    compiled = RetrievalCascade(k=1).compile(Classify(), trainset=rows)
    state_bytes = len(json.dumps(compiled.dump_state()))
    assert 500_000 < state_bytes < 1_000_000
    worker = start()
    await send_program(producer, topics, 1, compiled)
    await until(lambda: worker.version == 1, "version 1", 20)
    records = await acks(kafka_settings, topics, 1)
    assert [(r["version"], r["status"]) for r in records] == [(1, "serving")]
