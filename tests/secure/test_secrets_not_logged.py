"""No password of the secure stack appears in any log of the run: the broker's and the
database's own logs, the services' logs and every file the session's tests wrote, and
everything this process logged at DEBUG during the secure tests.

``tests/secure/conftest.py`` runs this test last, so it sees what the other tests left.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from dspy_flywheel.settings import KafkaSettings, PostgresSettings
from dspy_flywheel.store.pool import connect_kwargs
from tests.secure.stack import SecureStack

LOOP_TEST = "test_loop_secure.py"


def test_no_password_in_any_log(
    secure_stack: SecureStack, run_log_dir: Path, debug_log: Path, request: pytest.FixtureRequest
) -> None:
    secrets = {name: value.encode() for name, value in secure_stack.passwords().items()}
    files = secure_stack.log_files() + [p for p in run_log_dir.rglob("*") if p.is_file()]
    found = [
        f"{path}: {name}"
        for path in files
        for name, value in secrets.items()
        if value in path.read_bytes()
    ]
    assert found == []

    # The logs are the real ones: logins of this run are in them.
    broker = (secure_stack.kafka_logs / "server.log").read_text(errors="replace")
    assert "Authentication complete" in broker
    assert "SSL enabled" in secure_stack.pg_log.read_text(errors="replace")
    assert "Authenticated as flywheel via SCRAM-SHA-512" in debug_log.read_text()
    if any(f"/{LOOP_TEST}::" in item.nodeid for item in request.session.items):
        service_logs = {p.name for p in run_log_dir.rglob("*.log")}
        assert {"collector.log", "trigger.log", "optimizer.log"} <= service_logs


def test_settings_never_show_the_passwords(secure_stack: SecureStack) -> None:
    """What a log line or a traceback may print of the settings hides the passwords that the
    clients get."""
    kafka = secure_stack.settings(KafkaSettings)
    pg = secure_stack.settings(PostgresSettings)
    passwords = secure_stack.passwords()
    assert kafka.client_kwargs()["sasl_plain_password"] == passwords["kafka-client"]
    assert connect_kwargs(pg)["password"] == passwords["pg-client"]
    for shown in (repr(kafka), str(kafka), repr(pg), str(pg)):
        assert not [name for name, value in passwords.items() if value in shown], shown
