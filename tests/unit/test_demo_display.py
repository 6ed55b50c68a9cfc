"""The demo's plain-line progress (CI logs) and its SIGTERM handling."""

from __future__ import annotations

import asyncio
import io
import os
import signal

import pytest
from rich.console import Console

from dspy_flywheel.demo.display import Display, serving_label
from dspy_flywheel.demo.runner import _cancel_on_sigterm
from dspy_flywheel.demo.traffic import Tally
from dspy_flywheel.demo.watch import Lifecycle


def test_plain_line_shows_the_phase_and_the_canary_beside_the_stable_version() -> None:
    out = io.StringIO()
    display = Display(Console(file=out, width=200))
    display.phase = "canary: both versions serve live traffic"
    tally = Tally()
    tally.add(None, True)
    serving = serving_label(None, {"version": 3, "share": 0.5})
    display.update(tally, Lifecycle("w"), serving)
    line = out.getvalue().strip()
    assert line.startswith("[canary: both versions serve live traffic] calls=1 ")
    assert "serving=code (unoptimized) + canary v3 on 50% of calls " in line
    assert serving_label(2, None) == "v2"


async def test_sigterm_cancels_the_demo_and_says_so() -> None:
    terminated = _cancel_on_sigterm()
    try:
        os.kill(os.getpid(), signal.SIGTERM)
        with pytest.raises(asyncio.CancelledError):
            await asyncio.sleep(5)
        assert terminated.is_set()
    finally:
        asyncio.get_running_loop().remove_signal_handler(signal.SIGTERM)
