"""What the demo needs: the local stack (ops/stack) and the embedded model (ops/model.sh)."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

_EXPORT = re.compile(r"^export (\w+)=(.*)$")


class DemoSetupError(RuntimeError):
    pass


def repo_root() -> Path:
    root = Path(__file__).resolve().parents[3]
    if not (root / "ops" / "stack").exists():
        raise DemoSetupError(
            f"ops/stack not found under {root}; run the demo from a clone of dspy-flywheel, or "
            "set KAFKA_BOOTSTRAP_SERVERS and DATABASE_URL to an existing stack"
        )
    return root


def _run(args: list[str], what: str) -> str:
    proc = subprocess.run(args, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        tail = (proc.stdout + proc.stderr).strip().splitlines()[-15:]
        raise DemoSetupError(f"{what} failed (exit {proc.returncode}):\n" + "\n".join(tail))
    return proc.stdout


def ensure_stack() -> dict[str, str]:
    """Kafka + PostgreSQL endpoints: from the environment, else ``ops/stack up``."""
    if os.environ.get("KAFKA_BOOTSTRAP_SERVERS") and os.environ.get("DATABASE_URL"):
        return {k: os.environ[k] for k in ("KAFKA_BOOTSTRAP_SERVERS", "DATABASE_URL")}
    stack = str(repo_root() / "ops" / "stack")
    _run([stack, "up"], "ops/stack up")
    env = {}
    for line in _run([stack, "env"], "ops/stack env").splitlines():
        match = _EXPORT.match(line.strip())
        if match:
            env[match.group(1)] = match.group(2).strip("'\"")
    if "KAFKA_BOOTSTRAP_SERVERS" not in env or "DATABASE_URL" not in env:
        raise DemoSetupError("ops/stack env did not print KAFKA_BOOTSTRAP_SERVERS and DATABASE_URL")
    return env


def ensure_model(model: str) -> None:
    """Fetch and verify the embedded model unless a custom path or hosted LM is used."""
    hosted = os.environ.get("FLYWHEEL_LM", "embedded") != "embedded"
    if hosted or model not in ("qwen1.5b", "smollm2"):
        return
    script = str(repo_root() / "ops" / "model.sh")
    args = [script, "fetch"] + (["--small"] if model == "smollm2" else [])
    _run(args, "ops/model.sh fetch")
