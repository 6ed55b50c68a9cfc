"""``python -m dspy_flywheel.lm stop --all``: every server with a state file in the dir goes."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from dspy_flywheel.lm.launcher import stop_all
from dspy_flywheel.lm.server import ServerInfo, write_state


def _state(run_dir: Path, model: str, pid: int) -> None:
    info = ServerInfo("http://127.0.0.1:1", pid, "key", f"/m/{model}.gguf", 4, 8192, 2)
    write_state(run_dir / f"lmserver-{model}.json", info)


def test_stop_all_stops_each_running_server_and_counts_them(tmp_path: Path) -> None:
    sleepers = [
        subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"]) for _ in range(2)
    ]
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    try:
        _state(tmp_path, "qwen", sleepers[0].pid)
        _state(tmp_path, "smollm2", sleepers[1].pid)
        _state(tmp_path, "exited", gone.pid)  # a stale file: nothing to stop
        assert stop_all(tmp_path, timeout_s=10) == 2
        assert all(s.poll() is not None for s in sleepers)  # ended (stop_all reaped them)
        assert stop_all(tmp_path, timeout_s=1) == 0
        assert stop_all(tmp_path / "absent") == 0
    finally:
        for sleeper in sleepers:
            sleeper.kill()
            sleeper.wait()
