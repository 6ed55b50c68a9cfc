"""The secure stack (``ops/stack up --secure``) as the tests see it: its environment, its
passwords, and the server logs that show how clients connected."""

from __future__ import annotations

import os
import re
import subprocess
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar
from unittest import mock

from pydantic_settings import BaseSettings

ROOT = Path(__file__).resolve().parents[2]
HINT = (
    "start the secure stack first: ops/stack up --secure (its state dir: "
    "FLYWHEEL_SECURE_STATE, default $FLYWHEEL_HOME/secure)"
)
S = TypeVar("S", bound=BaseSettings)
_CONNECTION_PREFIXES = ("KAFKA_", "DATABASE_")


class StackMissing(RuntimeError):
    pass


def _ops(*args: str) -> str:
    env = {k: v for k, v in os.environ.items() if k != "FLYWHEEL_STATE"}
    env["FLYWHEEL_SECURE"] = "1"
    if state := os.environ.get("FLYWHEEL_SECURE_STATE"):
        env["FLYWHEEL_STATE"] = state
    proc = subprocess.run(
        [str(ROOT / "ops" / "stack"), *args, "--secure"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )
    if proc.returncode != 0:
        raise StackMissing(f"ops/stack {args[0]} --secure: {proc.stdout}{proc.stderr}\n{HINT}")
    return proc.stdout


@dataclass(frozen=True)
class SecureStack:
    env: dict[str, str]  # what `ops/stack env --secure` prints
    state: Path
    kafka_logs: Path  # server.log, stdout.log, format.log
    pg_log: Path

    @classmethod
    def find(cls) -> SecureStack:
        status = _ops("status")
        env = dict(re.findall(r"^export (\w+)=(\S+)$", _ops("env"), flags=re.MULTILINE))
        if env.get("KAFKA_SECURITY_PROTOCOL") != "SASL_SSL":
            raise StackMissing(f"ops/stack env --secure printed no SASL_SSL settings: {env}")

        def path(pattern: str) -> Path:
            match = re.search(pattern, status, flags=re.MULTILINE)
            if not match:
                raise StackMissing(f"ops/stack status --secure lacks {pattern}: {status}")
            return Path(match.group(1))

        return cls(
            env=env,
            state=path(r"^state: (\S+)"),
            kafka_logs=path(r"^kafka: logs=(\S+)").parent,
            pg_log=path(r"^postgres: log=(\S+)"),
        )

    @property
    def kafka_port(self) -> int:
        return int(self.env["KAFKA_BOOTSTRAP_SERVERS"].rpartition(":")[2])

    @property
    def ca_file(self) -> Path:
        return Path(self.env["KAFKA_SSL_CAFILE"])

    @property
    def ca_key(self) -> Path:
        return self.ca_file.with_name("ca.key")

    def passwords(self) -> dict[str, str]:
        """Every password of the stack (broker's own user, clients', PostgreSQL superuser)."""
        secrets = self.state / "secrets"
        found = {p.name: p.read_text().strip() for p in secrets.iterdir() if p.name != "pgpass"}
        assert len(found) >= 4, found.keys()
        assert all(len(v) >= 16 for v in found.values()), found.keys()
        return found

    def log_files(self) -> list[Path]:
        """The servers' own logs (Kafka: server, stdout, storage format; PostgreSQL)."""
        files = [p for p in self.kafka_logs.iterdir() if p.is_file()]
        files.append(self.pg_log)
        files.extend(p for p in self.pg_log.parent.glob("*.log") if p != self.pg_log)
        return files

    def settings(self, cls: type[S], **overrides: str) -> S:
        """``cls()`` read from this stack's environment (plus ``overrides``), ignoring any
        KAFKA_* / DATABASE_* of this process."""
        return settings_from_env(cls, {**self.env, **overrides})


def settings_from_env(cls: type[S], env: Mapping[str, str]) -> S:
    with connection_env(env):
        return cls()


@contextmanager
def connection_env(env: Mapping[str, str]) -> Iterator[None]:
    """This process's environment with its KAFKA_* / DATABASE_* replaced by ``env``."""
    kept = {k: v for k, v in os.environ.items() if not k.startswith(_CONNECTION_PREFIXES)}
    with mock.patch.dict(os.environ, {**kept, **env}, clear=True):
        yield


@dataclass
class LogMark:
    """Where a log file ended when the mark was taken: ``new()`` reads what came after."""

    path: Path
    offset: int

    @classmethod
    def at_end(cls, path: Path) -> LogMark:
        return cls(path, path.stat().st_size if path.exists() else 0)

    def new(self) -> str:
        with self.path.open("rb") as f:
            f.seek(self.offset)
            return f.read().decode(errors="replace")
