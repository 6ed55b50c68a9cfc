"""The e2e loop (fake LM) on the secure stack, with the servers' own word that every connection
was encrypted and logged in.

worker events → collector rows → trigger request → job → program-updated → reload ack, with the
SDK (emitter, reloader), collector (faust and aiokafka engines), trigger and optimizer all on
SASL_SSL Kafka and TLS-only PostgreSQL. Evidence: the broker's config (its only client listener
is SASL_SSL) and log (a TLS handshake and a SCRAM login per connection), ``pg_stat_ssl`` for
every session while the services run, PostgreSQL's connection log; no password in any
process's argv or the services' environment (they get password files). Each run has its own
schema: the worker id is the same, and each run encrypts with its own key.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

from dspy_flywheel.contracts.topics import Topics
from dspy_flywheel.settings import KafkaSettings, PostgresSettings
from dspy_flywheel.store.pool import connect
from tests.conftest import fresh_schema
from tests.e2e.fake_loop import improve_once
from tests.e2e.harness import Loop
from tests.secure.stack import LogMark, SecureStack

TLS_PROTOCOLS = ("TLSv1.2", "TLSv1.3")


async def _sessions(pg: PostgresSettings) -> list[dict[str, Any]]:
    conn = await connect(pg)
    try:
        rows = await conn.fetch(
            """
            SELECT a.pid, a.usename, a.application_name, s.ssl, s.version, s.cipher
            FROM pg_stat_activity a JOIN pg_stat_ssl s USING (pid)
            WHERE a.datname = current_database() AND a.backend_type = 'client backend'
            """
        )
    finally:
        await conn.close()
    return [dict(r) for r in rows]


async def _broker_listeners(kafka: KafkaSettings) -> dict[str, str]:
    """listener name → security protocol, as the running broker reports its config."""
    admin = AIOKafkaAdminClient(**kafka.client_kwargs())
    await admin.start()
    try:
        wanted = {"listeners": None, "listener.security.protocol.map": None}
        [response] = await admin.describe_configs(
            [ConfigResource(ConfigResourceType.BROKER, "1", wanted)]
        )
    finally:
        await admin.close()
    entries = {
        e["config_names"]: e["config_value"]
        for e in response.to_object()["resources"][0]["config_entries"]
    }
    protocols = dict(
        pair.split(":") for pair in entries["listener.security.protocol.map"].split(",")
    )
    names = [item.split("://")[0] for item in entries["listeners"].split(",")]
    return {name: protocols[name] for name in names}


def _environ(pid: int) -> str:
    return Path(f"/proc/{pid}/environ").read_bytes().decode(errors="replace")


def _argv_holding(secrets: dict[str, str]) -> list[str]:
    leaks = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            argv = cmdline.read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue  # the process ended meanwhile
        leaks += [f"{cmdline.parent.name}: {name}" for name, v in secrets.items() if v in argv]
    return leaks


@pytest.mark.parametrize("engine", ["faust", "kafka"])
async def test_loop_runs_over_tls_and_sasl(
    engine: str,
    secure_stack: SecureStack,
    kafka_settings: KafkaSettings,
    pg_settings: PostgresSettings,
    topics: Topics,
    tmp_path: Path,
) -> None:
    secrets = secure_stack.passwords()
    broker_log = LogMark.at_end(secure_stack.kafka_logs / "server.log")
    pg_log = LogMark.at_end(secure_stack.pg_log)
    seen: dict[str, Any] = {}

    async def while_serving(loop: Loop) -> None:
        seen["sessions"] = await _sessions(pg_settings)
        seen["argv_leaks"] = _argv_holding(secrets)
        seen["environ"] = {name: _environ(proc.pid) for name, proc in loop.services.procs.items()}

    async with fresh_schema(pg_settings) as db_schema:
        turn = await improve_once(
            "BootstrapFewShot",
            kafka_settings,
            topics,
            db_schema,
            tmp_path,
            connection=secure_stack.env,
            service_settings={"FLYWHEEL_COLLECTOR_ENGINE": engine},
            while_serving=while_serving,
        )
    print(
        f"\nsecure loop ({engine} collector): accuracy {turn.accuracy_before:.2f} -> "
        f"{turn.accuracy_after:.2f} in {turn.seconds:.1f}s"
    )
    assert turn.accuracy_after - turn.accuracy_before >= 0.20, turn

    # PostgreSQL, while the three services ran: every session of the database is TLS.
    sessions = seen["sessions"]
    assert len(sessions) >= 4, sessions  # the services' pools and this check
    assert all(s["ssl"] and s["version"] in TLS_PROTOCOLS for s in sessions), sessions
    assert {s["usename"] for s in sessions} == {"flywheel"}, sessions
    authorized = re.findall(r"connection authorized: user=flywheel .*", pg_log.new())
    assert len(authorized) >= len(sessions), authorized
    assert all("SSL enabled (protocol=TLSv1." in line for line in authorized), authorized

    # Kafka: no listener but SASL_SSL for clients; a TLS handshake and a SCRAM login for every
    # connection the loop made (the broker logs both; ops/kafka/log4j2.secure.properties).
    assert await _broker_listeners(kafka_settings) == {
        "SASL_SSL": "SASL_SSL",
        "CONTROLLER": "SSL",
    }
    broker = broker_log.new()
    port = secure_stack.kafka_port
    handshakes = re.findall(
        rf"local=/127\.0\.0\.1:{port} .*SSL handshake completed successfully .*"
        r"protocol '(TLSv1\.[23])'",
        broker,
    )
    logins = broker.count("Using SASL mechanism 'SCRAM-SHA-512'")
    completed = broker.count("Authentication complete")
    print(
        f"broker: {len(handshakes)} TLS handshakes ({sorted(set(handshakes))}), {logins} SCRAM "
        f"logins; PostgreSQL: {len(sessions)} sessions, all TLS; {len(authorized)} logged"
    )
    assert len(handshakes) >= 5, broker[-3000:]  # worker, watcher and the three services
    assert logins >= len(handshakes) - 2, (len(handshakes), logins)
    assert completed == logins, (completed, logins)
    assert "Failed authentication" not in broker

    # Passwords: in no process's argv; the services got file paths, not passwords.
    assert seen["argv_leaks"] == []
    for name, environ in seen["environ"].items():
        assert "KAFKA_SASL_PASSWORD_FILE=" in environ
        assert "DATABASE_PASSWORD_FILE=" in environ
        assert not [k for k, v in secrets.items() if v in environ], name
