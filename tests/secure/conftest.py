"""Fixtures on the secure stack (``ops/stack up --secure``): Kafka with one SASL_SSL listener
(SCRAM-SHA-512) and PostgreSQL with hostssl + scram-sha-256 only.

``kafka_settings``, ``pg_settings`` and ``db_schema`` are overridden here, so the shared
fixtures (``topics``, ``db_pool``) use the secure stack; the plain stack's KAFKA_* /
DATABASE_* of this process are ignored. During these tests every log record of this process
(DEBUG and up) also goes to ``secure-run.log`` in the session's temporary directory, which
``test_secrets_not_logged.py`` greps with everything else, last.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from dspy_flywheel.settings import KafkaSettings, PostgresSettings
from tests.conftest import fresh_schema
from tests.secure.stack import SecureStack, StackMissing

LAST = "tests/secure/test_secrets_not_logged.py"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The log grep runs after every other test of the session, so it sees their logs."""
    items.sort(key=lambda item: item.nodeid.startswith(LAST))


@pytest.fixture(scope="session")
def secure_stack() -> SecureStack:
    try:
        return SecureStack.find()
    except StackMissing as exc:
        pytest.fail(str(exc), pytrace=False)


@pytest.fixture(scope="session")
def kafka_settings(secure_stack: SecureStack) -> KafkaSettings:
    return secure_stack.settings(KafkaSettings)


@pytest.fixture(scope="session")
def pg_settings(secure_stack: SecureStack) -> PostgresSettings:
    return secure_stack.settings(PostgresSettings)


@pytest.fixture(scope="session")
async def db_schema(pg_settings: PostgresSettings) -> AsyncIterator[str]:
    async with fresh_schema(pg_settings) as schema:
        yield schema


@pytest.fixture(scope="session")
def run_log_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The session's temporary directory: every test's tmp_path (service logs) is in it."""
    return tmp_path_factory.getbasetemp()


@pytest.fixture(scope="session", autouse=True)
def debug_log(run_log_dir: Path) -> Iterator[Path]:
    path = run_log_dir / "secure-run.log"
    handler = logging.FileHandler(path)
    handler.setLevel(logging.DEBUG)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    level = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    yield path
    root.removeHandler(handler)
    root.setLevel(level)
    handler.close()
