"""A module that says when it was imported: a compile child that imports it leaves a file at
``$FLYWHEEL_REF_CANARY``. Only test_refs_allowlist.py names it, as a job's reference."""

from __future__ import annotations

import os
from pathlib import Path

_marker = os.environ.get("FLYWHEEL_REF_CANARY")
if _marker:
    Path(_marker).write_text("imported")


def build() -> None:
    raise RuntimeError("a canary, not a program")
