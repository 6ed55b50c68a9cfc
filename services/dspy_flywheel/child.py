"""What a worker child process (the optimizer's compile child, the LoRA trainer) does first:
keep stdout for its JSON-line reports, and exit when its parent goes away."""

from __future__ import annotations

import os
import sys
import threading
from typing import TextIO


def report_stream() -> TextIO:
    """Keep the real stdout for reports; send fd 1 (prints, C libraries) to stderr."""
    stream = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)
    return stream


def watch_parent(exit_code: int) -> None:
    """Exit with ``exit_code`` when stdin closes: the parent died or gave up on us."""

    def watch() -> None:
        while sys.stdin.buffer.read(4096):
            pass
        os._exit(exit_code)

    threading.Thread(target=watch, name="parent-lifeline", daemon=True).start()
