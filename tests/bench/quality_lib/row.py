"""One row of the quality table, run in a fresh child process (so its peak RSS is its own).

The child loads the task and the LM, compiles the zero-shot program with the row's optimizer
through ``DSPyAgent``, scores the result on the test split and sends a ``RowResult`` back.
LM calls and tokens are counted at the engine (``dspy_flywheel.lm.engine_stats``).
"""

from __future__ import annotations

import dataclasses
import logging
import os
import resource
import sys
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .options import BASELINE, SHORT_NAMES, Options, check_split, optimizer_kwargs


@dataclass(frozen=True, slots=True)
class RowResult:
    optimizer: str
    ok: bool
    test_score: float = 0.0
    test_n: int = 0
    test_errors: int = 0
    compile_calls: int = 0
    eval_calls: int = 0
    tokens: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    lm_errors: int = 0
    compile_s: float = 0.0
    eval_s: float = 0.0
    wall_s: float = 0.0
    peak_rss_mb: float = 0.0
    demos: int = 0
    instruction_changed: bool = False
    error: str = ""
    # BootstrapFinetune: the trainer child's peak RSS, training seconds and the adapter's size
    train_rss_mb: float | None = None
    train_s: float | None = None
    adapter_mb: float | None = None

    @property
    def lm_calls(self) -> int:
        return self.compile_calls + self.eval_calls


def say(label: str, message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {label}: {message}", flush=True)


def load_task(options: Options) -> Any:
    from tests.fixtures.tasks import get_task, load_jsonl_task

    if options.task is not None:
        return get_task(options.task)
    assert options.dataset is not None
    assert options.signature is not None
    return load_jsonl_task(
        options.dataset,
        options.signature,
        metric=options.metric,
        name=options.name,
        instructions=options.instructions,
    )


class Heartbeat:
    """Prints elapsed time, phase and engine counters every ``every_s`` seconds."""

    def __init__(self, label: str, lm: Any, every_s: float) -> None:
        self.label, self.lm, self.every_s = label, lm, every_s
        self.phase = "starting"
        self.started = time.perf_counter()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="heartbeat", daemon=True)

    def __enter__(self) -> Heartbeat:
        if self.every_s > 0:
            self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()

    def _run(self) -> None:
        from dspy_flywheel.lm import engine_stats

        while not self._stop.wait(self.every_s):
            stats = engine_stats(self.lm)
            say(
                self.label,
                f"... {self.phase}, {time.perf_counter() - self.started:.0f}s, "
                f"{stats.calls} LM calls, {stats.total_tokens} tokens, "
                f"{stats.errors} LM errors",
            )


def setup_child(options: Options) -> None:
    """Process-wide settings of a row's child: which model, quiet DSPy logs."""
    if not options.verbose:
        # Read when tqdm is imported (with dspy). Bars that DSPy's Evaluate shows on purpose
        # (BootstrapRS, MIPROv2 candidates) stay: they pass disable=False explicitly.
        os.environ.setdefault("TQDM_DISABLE", "1")
    os.environ["FLYWHEEL_LM_MODEL"] = options.model
    if options.lm_threads is not None:
        os.environ["FLYWHEEL_LM_THREADS"] = str(options.lm_threads)
    if not options.verbose:
        for name in ("dspy", "optuna"):
            logging.getLogger(name).setLevel(logging.WARNING)


def _demo_count(program: Any) -> int:
    return sum(len(getattr(p, "demos", []) or []) for p in program.predictors())


def _instructions(program: Any) -> list[str]:
    return [p.signature.instructions for p in program.predictors()]


def measure_row(
    options: Options, optimizer: str, *, make_lm: Callable[[], Any] | None = None
) -> RowResult:
    """Run one row in this process; meant for a fresh child (see ``row_main``).

    ``make_lm`` replaces ``dspy_flywheel.lm.build_lm`` (tests pass a fake engine's LM).
    """
    import dspy

    from dspy_flywheel.lm import build_lm, engine_stats, reuse_identical_calls
    from dspy_flywheel.lm.adapter import InlineChatAdapter
    from dspy_flywheel.sdk.agent import DSPyAgent

    label = SHORT_NAMES.get(optimizer, optimizer)
    started = time.perf_counter()
    task = load_task(options)
    check_split(len(task.examples), options.train, options.dev, options.test)
    split = task.split(options.seed, train=options.train, dev=options.dev, test=options.test)
    if options.test_limit is not None:  # a named subset: the first N of the fixed test split
        split = dataclasses.replace(split, test=split.test[: options.test_limit])
    lm = reuse_identical_calls((make_lm or build_lm)())  # a row is one job, as in the optimizer
    # "chat": the adapter workers and jobs serve with (``configure_lm``), which also reads the
    # inline ``[[ ## field ## ]] = 'value'`` answers plain ChatAdapter re-sends through JSON
    adapter = dspy.JSONAdapter() if options.adapter == "json" else InlineChatAdapter()
    before = engine_stats(lm)
    agent = DSPyAgent(lm, metric=task.metric)
    program = dspy.Predict(task.dspy_signature())
    say(
        label,
        f"model {lm.model} loaded; train={len(split.train)} dev={len(split.dev)} "
        f"test={len(split.test)} adapter={options.adapter}",
    )

    with dspy.context(lm=lm, adapter=adapter), Heartbeat(label, lm, options.heartbeat_s) as beat:
        compiled, compile_s = program, 0.0
        if optimizer != BASELINE:
            beat.phase = "compiling"
            kwargs = optimizer_kwargs(optimizer, options)
            say(label, f"compiling with {optimizer} {kwargs}")
            created = agent.create_optimizer(optimizer, **kwargs)
            compile_started = time.perf_counter()
            compiled = agent.compile_with_optimizer(program, split.train, created, valset=split.dev)
            compile_s = time.perf_counter() - compile_started
        compile_stats = engine_stats(lm) - before
        say(
            label,
            f"compiled in {compile_s:.1f}s with {compile_stats.calls} LM calls; "
            f"{_demo_count(compiled)} demos; evaluating {len(split.test)} test examples",
        )
        beat.phase = "evaluating test"
        eval_started = time.perf_counter()
        result = agent.evaluate(compiled, split.test, num_threads=options.threads)
        eval_s = time.perf_counter() - eval_started
    total = engine_stats(lm) - before
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # Linux: KiB
    return RowResult(
        optimizer=optimizer,
        ok=True,
        test_score=result.score,
        test_n=result.n,
        test_errors=result.errors,
        compile_calls=compile_stats.calls,
        eval_calls=total.calls - compile_stats.calls,
        tokens=total.total_tokens,
        prompt_tokens=total.prompt_tokens,
        completion_tokens=total.completion_tokens,
        lm_errors=total.errors,
        compile_s=compile_s,
        eval_s=eval_s,
        wall_s=time.perf_counter() - started,
        peak_rss_mb=peak_kib / 1024,
        demos=_demo_count(compiled),
        instruction_changed=_instructions(compiled) != _instructions(program),
        **_adapter_figures(compiled),
    )


def _adapter_figures(program: Any) -> dict[str, Any]:
    """Trainer peak RSS, training time and adapter size of a fine-tuned program ({} if none)."""
    from dspy_flywheel.finetune.serving import program_adapter

    artifact = program_adapter(program)
    if artifact is None:
        return {}
    return {
        "train_rss_mb": artifact.peak_rss_mb,
        "train_s": artifact.train_s,
        "adapter_mb": round(artifact.size / 1e6, 2),
    }


def row_main(options: Options, optimizer: str, results: Any) -> None:
    """Child-process entry point: puts one RowResult on the ``results`` queue."""
    logging.basicConfig(
        level=logging.WARNING,
        stream=sys.stdout,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    started = time.perf_counter()
    try:
        setup_child(options)
        row = measure_row(options, optimizer)
    except BaseException as exc:  # reported as a failed row; the parent prints it
        traceback.print_exc(file=sys.stdout)
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        row = RowResult(
            optimizer=optimizer,
            ok=False,
            wall_s=time.perf_counter() - started,
            peak_rss_mb=peak,
            error=f"{type(exc).__name__}: {exc}",
        )
    results.put(row)
