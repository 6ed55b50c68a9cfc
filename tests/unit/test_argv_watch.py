"""tests/secure/argv_watch.py (used by .ci/run around ops/stack up --secure) sees a password on
a command line, and only there."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

WATCH = Path(__file__).resolve().parents[1] / "secure" / "argv_watch.py"
PASSWORD = "0123456789abcdef0123456789abcdef"


def _watch(secrets: Path, *command: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(WATCH), str(secrets), "--", *command],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_a_password_on_a_command_line_is_reported(tmp_path: Path) -> None:
    (tmp_path / "kafka-client").write_text(PASSWORD + "\n")
    nap = "import time; time.sleep(0.5)"
    leaked = _watch(tmp_path, sys.executable, "-c", nap, PASSWORD)
    assert leaked.returncode == 3, leaked.stdout + leaked.stderr
    assert "the password kafka-client" in leaked.stdout
    assert PASSWORD not in leaked.stdout + leaked.stderr

    clean = _watch(tmp_path, sys.executable, "-c", nap, str(tmp_path / "kafka-client"))
    assert clean.returncode == 0, clean.stdout + clean.stderr
    assert "0 with a password" in clean.stdout


def test_the_command_status_is_kept(tmp_path: Path) -> None:
    assert _watch(tmp_path, sys.executable, "-c", "raise SystemExit(7)").returncode == 7
