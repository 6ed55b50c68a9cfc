"""Regressions: the manager API's audit trail, its actor, and its answers to bad input.

Real database and broker; the database is made unreachable through a TCP proxy of this test
that is closed (the shared PostgreSQL keeps running).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import httpx
import pytest

from dspy_flywheel.access import TokenStore
from dspy_flywheel.bus import Record, open_consumer, read_to_end, stop_consumer
from dspy_flywheel.contracts.codec import decode
from dspy_flywheel.contracts.topics import Topics
from dspy_flywheel.manager import ManagerSettings, OptimizationManager
from dspy_flywheel.manager.api import create_secured_app
from dspy_flywheel.settings import KafkaSettings, PostgresSettings
from dspy_flywheel.store import jobs
from tests.integration.optimizer_support import ALLOWED_REFS, PROGRAM_REF

pytestmark = pytest.mark.timeout(180)
OPERATOR = "operator-secret-0123"
TOKENS = TokenStore.parse(f"olga:operator:{OPERATOR},ada:admin:admin-secret-01234567")
AUTH = {"Authorization": f"Bearer {OPERATOR}"}


class Proxy:
    """A TCP proxy to PostgreSQL; ``close`` makes the database unreachable for its clients."""

    def __init__(self, host: str, port: int) -> None:
        self.target = (host, port)
        self.server: asyncio.Server | None = None
        self.links: list[asyncio.StreamWriter] = []

    async def start(self) -> int:
        self.server = await asyncio.start_server(self._link, "127.0.0.1", 0)
        return int(self.server.sockets[0].getsockname()[1])

    async def _link(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection(*self.target)
        self.links += [writer, up_writer]

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            with contextlib.suppress(OSError):
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            dst.close()

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))

    async def close(self) -> None:
        assert self.server is not None
        self.server.close()
        for link in self.links:
            link.transport.abort()
        await self.server.wait_closed()


@pytest.fixture
async def proxied(pg_settings: PostgresSettings) -> AsyncIterator[tuple[Proxy, PostgresSettings]]:
    url = urlsplit(pg_settings.url)
    proxy = Proxy(url.hostname or "127.0.0.1", url.port or 5432)
    port = await proxy.start()
    netloc = url.netloc.rsplit(":", 1)[0] + f":{port}"
    yield proxy, pg_settings.model_copy(update={"url": urlunsplit(url._replace(netloc=netloc))})
    with contextlib.suppress(Exception):
        await proxy.close()


@pytest.fixture
async def api(
    proxied: tuple[Proxy, PostgresSettings], topics: Topics, db_schema: str
) -> AsyncIterator[tuple[httpx.AsyncClient, OptimizationManager, Proxy]]:
    proxy, pg = proxied
    settings = ManagerSettings.model_validate(
        {
            "FLYWHEEL_TOPIC_PREFIX": topics.prefix,
            "FLYWHEEL_DB_SCHEMA": db_schema,
            "FLYWHEEL_OPTIMIZER_ALLOWED_REFS": ALLOWED_REFS,
            "postgres": pg,
        }
    )
    manager = OptimizationManager(settings)
    await manager.start()
    app = create_secured_app(manager, TOKENS, own_manager=False)
    transport = httpx.ASGITransport(app=app)  # type: ignore[arg-type]  # an ASGI callable
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://m") as client:
            yield client, manager, proxy
    finally:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(manager.close(), 10)


async def requests_published(kafka: KafkaSettings, topic: str) -> list[dict[str, Any]]:
    consumer = await open_consumer(kafka, [topic], fetch_max_wait_ms=50)
    out: list[dict[str, Any]] = []

    async def keep(record: Record) -> None:
        out.append(decode(record.value, record.headers).event.to_record())

    try:
        await read_to_end(consumer, keep)
    finally:
        await stop_consumer(consumer)
    return out


DEEP_BODY = b'{"worker_id": "w", "params": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"


@pytest.mark.parametrize(
    ("path", "body", "status", "fragment"),
    [
        ("/api/v1/jobs", {"worker_id": "w", "optimizer": 5}, 400, "optimizer must be a string"),
        ("/api/v1/jobs", {"worker_id": "w", "program_ref": 5}, 400, "program_ref must be a str"),
        ("/api/v1/jobs", {"worker_id": "w", "metric_ref": {}}, 400, "metric_ref must be a str"),
        ("/api/v1/jobs", {"worker_id": "w", "params": [1]}, 400, "params must be an object"),
        ("/api/v1/jobs", DEEP_BODY, 400, "nests deeper than 64"),
        ("/api/v1/jobs", {"worker_id": "w" * 900_000}, 400, "at most 256 allowed"),
        ("/api/v1/jobs", b'{"worker_id": "' + b"x" * 2_000_000 + b'"}', 413, "over 1,048,576"),
        ("/api/v1/jobs", {"worker_id": "w\x00"}, 400, "NUL"),
        ("/api/v1/jobs", b'{"worker_id": "\xff\xfe"}', 400, "UTF-8"),
        ("/api/v1/jobs", {"worker_id": "w", "requested_by": "bob"}, 400, "authenticated caller"),
        ("/api/v1/jobs", {"worker_id": "w", "program_ref": "tempfile:mkdtemp"}, 400, "registered"),
        ("/api/v1/jobs/batch", {"worker_ids": ["w", ""]}, 400, "worker_ids[] is empty"),
        ("/api/v1/jobs/batch", {"worker_ids": ["w", "x\x00"]}, 400, "NUL"),
        ("/api/v1/jobs/ab%00cd/cancel", {}, 400, "NUL"),
        ("/api/v1/jobs?worker_id=a%00b", {"worker_id": "w"}, 400, "NUL"),
        ("/api/v1/workers/%20w/schedule", {}, 400, "surrounding spaces"),
    ],
)
async def test_bad_input_is_a_4xx_that_names_the_problem_publishes_nothing_and_is_audited(
    api: tuple[httpx.AsyncClient, OptimizationManager, Any],
    kafka_settings: KafkaSettings,
    topics: Topics,
    db_pool: asyncpg.Pool,
    path: str,
    body: dict[str, Any] | bytes,
    status: int,
    fragment: str,
) -> None:
    client, _, _ = api
    before = await db_pool.fetchval("SELECT coalesce(max(id), 0) FROM audit_log")
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    answer = await client.post(path, content=content, headers=AUTH)
    assert answer.status_code == status, answer.text
    assert fragment in answer.json()["error"]
    assert await requests_published(kafka_settings, topics.optimization_requests) == []
    rows = await db_pool.fetch(
        "SELECT actor, action, details FROM audit_log WHERE id > $1 ORDER BY id", before
    )
    assert [(r["actor"], r["details"]["status"]) for r in rows] == [("olga", status)]


async def test_the_actor_is_the_authenticated_caller(
    api: tuple[httpx.AsyncClient, OptimizationManager, Any],
    kafka_settings: KafkaSettings,
    topics: Topics,
    db_pool: asyncpg.Pool,
    unique: str,
) -> None:
    client, _, _ = api
    worker = f"w-{unique}"
    created = await client.post(
        "/api/v1/jobs", json={"worker_id": worker, "program_ref": PROGRAM_REF}, headers=AUTH
    )
    assert created.status_code == 202, created.text
    job_id = created.json()["job_id"]
    (published,) = await requests_published(kafka_settings, topics.optimization_requests)
    assert published["requested_by"] == "api:olga"
    row = await db_pool.fetchrow(
        "SELECT actor, details FROM audit_log WHERE details->'response'->>'job_id' = $1", job_id
    )
    assert row is not None
    assert row["actor"] == "olga"
    assert row["details"]["status"] == 202
    # a queued job cancelled over the API says who cancelled it
    queued = f"job-{unique}"
    await jobs.enqueue(db_pool, jobs.JobRequest(queued, worker, "BootstrapFewShot"))
    cancelled = await client.post(f"/api/v1/jobs/{queued}/cancel", headers=AUTH)
    assert cancelled.status_code == 202, cancelled.text
    assert cancelled.json()["message"] == "cancelled by api:olga before it started"


async def test_with_the_database_away_a_mutation_is_refused_and_nothing_is_published(
    api: tuple[httpx.AsyncClient, OptimizationManager, Proxy],
    kafka_settings: KafkaSettings,
    topics: Topics,
    unique: str,
) -> None:
    client, _, proxy = api
    await proxy.close()  # PostgreSQL unreachable from the API from now on
    answer = await client.post(
        "/api/v1/jobs", json={"worker_id": f"w-{unique}", "program_ref": PROGRAM_REF}, headers=AUTH
    )
    assert answer.status_code == 503, answer.text
    assert "nothing done" in answer.json()["error"]
    assert await requests_published(kafka_settings, topics.optimization_requests) == []
    # authentication needs no database: unknown callers get 401, not 500
    assert (await client.post("/api/v1/jobs", json={"worker_id": "w"})).status_code == 401
    assert (await client.get("/api/v1/jobs")).status_code == 401
    assert (await client.get("/api/v1/jobs", headers=AUTH)).status_code == 503
