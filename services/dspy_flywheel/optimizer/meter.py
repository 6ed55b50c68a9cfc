"""Inside the compile child: count LM use, enforce budgets, report progress to the parent.

LM calls and tokens are read from the engine counters (``dspy_flywheel.lm.engine_stats``); an
LM without them is counted by this callback (calls only). When a budget is exhausted the child
reports it and exits at once: a DSPy optimizer swallows exceptions raised in calls, and the child
is disposable, so exiting is the one stop that cannot be ignored.
"""

from __future__ import annotations

import json
import logging
import os
import re
import threading
import time
from typing import Any, TextIO

from dspy.utils.callback import BaseCallback

from dspy_flywheel.optimizer.spec import EXIT_BUDGET

_TRIAL = re.compile(r"Trial (\d+) / (\d+)")


class Reporter:
    """Thread-safe JSON-lines writer to the parent."""

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream
        self._lock = threading.Lock()

    def send(self, message: dict[str, Any]) -> None:
        line = json.dumps({"t": time.time(), **message})
        with self._lock:
            self._stream.write(line + "\n")
            self._stream.flush()


class Meter(BaseCallback):  # type: ignore[misc]  # dspy is untyped
    """LM usage, budgets and compile progress, as one DSPy callback."""

    def __init__(
        self,
        lm: Any,
        reporter: Reporter,
        *,
        max_lm_calls: int | None,
        max_tokens: int | None,
        expected_calls: int,
    ) -> None:
        self.reporter = reporter
        self.max_lm_calls = max_lm_calls
        self.max_tokens = max_tokens
        self.expected_calls = max(1, expected_calls)
        self._stats_fn = self._engine_stats_fn(lm)
        self._lock = threading.Lock()
        self._own_calls = 0
        self._own_errors = 0
        self.trials: list[dict[str, Any]] = []
        self.trial_total: int | None = None
        self.trial_current = 0  # from MIPROv2's log: the trial now running
        self.phase = "compile"
        self.phase_fraction = 0.0
        self.training: dict[str, Any] = {}  # BootstrapFinetune: train_step, train_steps, train_loss

    @staticmethod
    def _engine_stats_fn(lm: Any) -> Any:
        from dspy_flywheel.lm import engine_stats

        try:
            engine_stats(lm)
        except TypeError:
            return None
        return lambda: engine_stats(lm)

    def usage(self) -> dict[str, int]:
        if self._stats_fn is not None:
            stats = self._stats_fn()
            return {
                "lm_calls": stats.calls + stats.errors,
                "tokens": stats.total_tokens,
                "lm_errors": stats.errors,
            }
        with self._lock:
            return {"lm_calls": self._own_calls, "tokens": 0, "lm_errors": self._own_errors}

    # -- DSPy callback hooks ------------------------------------------------------------

    def on_lm_start(self, call_id: str, instance: Any, inputs: dict[str, Any]) -> None:
        with self._lock:
            self._own_calls += 1
        used = self.usage()
        if self.max_lm_calls is not None and used["lm_calls"] >= self.max_lm_calls:
            self._abort(
                f"LM call budget exhausted: {used['lm_calls']} calls (limit {self.max_lm_calls})",
                used,
            )
        if self.max_tokens is not None and used["tokens"] >= self.max_tokens:
            self._abort(
                f"token budget exhausted: {used['tokens']} tokens (limit {self.max_tokens})", used
            )

    def on_lm_end(self, call_id: str, outputs: Any, exception: BaseException | None = None) -> None:
        if exception is not None:
            with self._lock:
                self._own_errors += 1

    def on_evaluate_end(
        self, call_id: str, outputs: Any, exception: BaseException | None = None
    ) -> None:
        if self.phase != "compile" or exception is not None:
            return
        score = getattr(outputs, "score", None)
        trial = {
            "n": len(self.trials) + 1,
            "score": None if score is None else float(score) / 100,
            "t": time.time(),
        }
        self.trials.append(trial)
        self.reporter.send({"type": "trial", **trial})

    # -- progress -----------------------------------------------------------------------

    def compile_fraction(self) -> float:
        if self.trial_total:
            done = self.trial_current - 1 if self.trial_current else len(self.trials)
            return min(1.0, max(0, done) / self.trial_total)
        return min(0.95, self.usage()["lm_calls"] / self.expected_calls)

    def progress(self) -> dict[str, Any]:
        fraction = self.compile_fraction() if self.phase == "compile" else self.phase_fraction
        scores = [t["score"] for t in self.trials if t["score"] is not None]
        return {
            "type": "progress",
            "phase": self.phase,
            "fraction": round(fraction, 4),
            "trials": len(self.trials),
            "trial_total": self.trial_total,
            "best_trial_score": max(scores) if scores else None,
            **self.training,
            **self.usage(),
        }

    def on_training(self, message: dict[str, Any]) -> None:
        """A trainer report (``finetune.provider``): forwarded for the training span, and each
        step's number and loss join the progress reports (the job's status events)."""
        self.reporter.send({**message, "type": "train", "event": message.get("type")})
        if message.get("type") == "step":
            self.training = {
                "train_step": message.get("step"),
                "train_steps": message.get("steps"),
                "train_loss": message.get("loss"),
            }

    def _abort(self, message: str, used: dict[str, int]) -> None:
        self.reporter.send({"type": "error", "kind": "budget", "message": message, **used})
        os._exit(EXIT_BUDGET)


class TrialLogHandler(logging.Handler):
    """Reads MIPROv2's ``Trial X / Y`` log lines to learn how many trials to expect."""

    def __init__(self, meter: Meter) -> None:
        super().__init__(level=logging.INFO)
        self.meter = meter

    def emit(self, record: logging.LogRecord) -> None:
        match = _TRIAL.search(record.getMessage())
        if match:
            self.meter.trial_current = int(match.group(1))
            self.meter.trial_total = int(match.group(2))


class Ticker(threading.Thread):
    """Sends the meter's progress every ``interval_s`` while it changes."""

    def __init__(self, meter: Meter, interval_s: float) -> None:
        super().__init__(name="progress-ticker", daemon=True)
        self.meter = meter
        self.interval_s = interval_s
        self._stop_event = threading.Event()

    def run(self) -> None:
        last: dict[str, Any] | None = None
        while not self._stop_event.wait(self.interval_s):
            current = self.meter.progress()
            if current != last:
                self.meter.reporter.send(current)
                last = current

    def stop(self) -> None:
        self._stop_event.set()
