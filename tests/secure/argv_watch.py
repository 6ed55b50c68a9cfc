"""Run a command and watch every process's command line for the secure stack's passwords.

Usage: python tests/secure/argv_watch.py SECRETS_DIR -- COMMAND [ARG...]

While COMMAND runs (``ops/stack up --secure`` in ``.ci/run``), every 20 ms this reads
``/proc/*/cmdline`` and, as soon as the password files in SECRETS_DIR exist, looks for each
password in them: what ``ps`` would show while certificates, SCRAM users and roles are made.
Exits with COMMAND's status, or 3 when a password was seen (the pid and the file's name are
printed, never the password). Standard library only.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

INTERVAL_S = 0.02
FOUND_EXIT = 3
NOT_SECRETS = {"pgpass"}  # a credentials file built from the others


def passwords(secrets_dir: Path) -> dict[str, bytes]:
    try:
        files = [p for p in secrets_dir.iterdir() if p.is_file() and p.name not in NOT_SECRETS]
    except OSError:
        return {}
    found = {}
    for path in files:
        try:
            value = path.read_bytes().strip()
        except OSError:
            continue
        if len(value) >= 16:  # written whole (files are renamed into place)
            found[path.name] = value
    return found


def leaks(secrets: dict[str, bytes]) -> set[tuple[str, str]]:
    seen = set()
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            argv = cmdline.read_bytes()
        except OSError:
            continue  # ended meanwhile
        seen |= {(cmdline.parent.name, name) for name, value in secrets.items() if value in argv}
    return seen


def main(argv: list[str]) -> int:
    if len(argv) < 4 or argv[2] != "--":
        print(__doc__, file=sys.stderr)
        return 2
    secrets_dir = Path(argv[1])
    command = subprocess.Popen(argv[3:])
    found: set[tuple[str, str]] = set()
    samples = 0
    while True:
        done = command.poll() is not None
        secrets = passwords(secrets_dir)
        if secrets:
            found |= leaks(secrets)
            samples += 1
        if done:
            break
        time.sleep(INTERVAL_S)
    for pid, name in sorted(found):
        print(f"argv_watch: process {pid} had the password {name} on its command line")
    print(f"argv_watch: {samples} samples of every command line, {len(found)} with a password")
    if found:
        return FOUND_EXIT
    return command.returncode


if __name__ == "__main__":
    sys.exit(main(sys.argv))
