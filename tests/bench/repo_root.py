"""Imported first by bench scripts run as files: puts the repository root on ``sys.path`` (and on
``PYTHONPATH`` for the processes they start) so ``tests.fixtures`` imports."""

import os
import sys
from pathlib import Path

ROOT = str(Path(__file__).resolve().parents[2])
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)
os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (ROOT, os.environ.get("PYTHONPATH")) if p)
