"""A service stops on SIGTERM, and gives up on a shutdown that hangs after its grace period."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from dspy_flywheel.service_main import DEFAULT_GRACE_S, shutdown_grace_s

SERVICE = """
import asyncio, sys
from dspy_flywheel.service_main import run_until_signal

async def service(settings, *, stop):
    print("ready", flush=True)
    await stop.wait()
    if sys.argv[1] == "hangs":
        await asyncio.Event().wait()  # a close that never returns (a dead broker, say)

asyncio.run(run_until_signal(service, None, grace_s=1.0))
"""


def stop_service(behaviour: str) -> tuple[int, float, str]:
    """Start the service, SIGTERM it once ready; (exit code, seconds to exit, stderr)."""
    proc = subprocess.Popen(
        [sys.executable, "-c", SERVICE, behaviour],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
    )
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "ready"
    started = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    _, stderr = proc.communicate(timeout=20)
    return proc.returncode, time.monotonic() - started, stderr


def test_a_clean_shutdown_exits_with_0() -> None:
    code, _, stderr = stop_service("returns")
    assert code == 0, stderr  # a cut shutdown (after the 1 s grace) exits 1


def test_a_hanging_shutdown_is_cut_after_the_grace_period() -> None:
    code, seconds, stderr = stop_service("hangs")
    assert code == 1
    assert 1.0 <= seconds < 5.0
    assert "shutdown still not finished after 1 s" in stderr
    assert "still waiting: " in stderr  # where the shutdown is stuck, for the operator


def test_grace_period_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("FLYWHEEL_SHUTDOWN_GRACE_S", raising=False)
    assert shutdown_grace_s() == DEFAULT_GRACE_S
    monkeypatch.setenv("FLYWHEEL_SHUTDOWN_GRACE_S", "7.5")
    assert shutdown_grace_s() == 7.5
    for bad in ("soon", "0", "-3"):
        monkeypatch.setenv("FLYWHEEL_SHUTDOWN_GRACE_S", bad)
        with pytest.raises(SystemExit, match="FLYWHEEL_SHUTDOWN_GRACE_S"):
            shutdown_grace_s()
