"""The compile child: ``python -m dspy_flywheel.optimizer.job --spec PATH``.

Runs one optimization in its own process so the service's event loop never blocks and the
limits are real: address space is capped with ``RLIMIT_AS``, the LM budget ends the process,
the parent kills it on timeout or cancel, and it exits by itself when the parent goes away
(its stdin, held open by the parent, reaches EOF). Reports go to the original stdout as JSON
lines; anything else printed lands on stderr.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import os
import resource
import sys
import time
from pathlib import Path
from typing import Any

from dspy_flywheel.child import report_stream, watch_parent
from dspy_flywheel.optimizer.spec import (
    EXIT_ERROR,
    EXIT_MEMORY,
    EXIT_ORPHANED,
    CompileResult,
    DataRow,
    JobSpec,
)

log = logging.getLogger("dspy_flywheel.optimizer.job")


def _limit_memory(memory_mb: int | None) -> None:
    if memory_mb:
        limit = memory_mb * 1024 * 1024
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))


def _examples(rows: list[DataRow], out_fields: list[str]) -> tuple[list[Any], list[DataRow]]:
    """The rows that carry their expected outputs, as DSPy examples, and those rows."""
    import dspy

    from dspy_flywheel.compile.examples import expected_outputs

    examples, kept = [], []
    for row in rows:
        expected = expected_outputs(row.outputs, row.label, out_fields)
        if expected is not None:
            examples.append(dspy.Example(**row.inputs, **expected).with_inputs(*row.inputs))
            kept.append(row)
    return examples, kept


def served_answers(rows: list[DataRow], out_fields: list[str], version: str | None) -> list[Any]:
    """Per labeled row, the answer ``version`` (None: the code's program) gave it live, as a
    prediction; None where another version served it, the stored answer lacks an output field,
    or no label came (its expected outputs are that answer, so reusing it would always score)."""
    import dspy

    answers: list[Any] = []
    for row in rows:
        outputs = row.outputs or {}
        usable = (
            row.has_label
            and row.program_version == version
            and all(f in outputs for f in out_fields)
        )
        answers.append(dspy.Prediction(**outputs) if usable else None)
    return answers


def _build_lm(lm_ref: str | None) -> Any:
    from dspy_flywheel.compile.refs import load_ref
    from dspy_flywheel.lm import build_lm, reuse_identical_calls

    return reuse_identical_calls(load_ref(lm_ref)() if lm_ref else build_lm())


def run(spec: JobSpec, reporter: Any) -> CompileResult:

    from dspy_flywheel.compile.catalog import create_optimizer
    from dspy_flywheel.compile.compiler import compile_program, load_state_into
    from dspy_flywheel.compile.errors import IncompatibleProgram
    from dspy_flywheel.compile.evaluation import evaluate
    from dspy_flywheel.compile.judge import exact_match
    from dspy_flywheel.compile.refs import build_program, load_metric
    from dspy_flywheel.compile.signature import output_fields, signature_of
    from dspy_flywheel.finetune.provider import add_progress_listener
    from dspy_flywheel.finetune.serving import program_adapter
    from dspy_flywheel.lm import configure_lm
    from dspy_flywheel.optimizer.meter import Meter, Ticker, TrialLogHandler

    lm = _build_lm(spec.lm_ref)
    program = build_program(spec.program_ref)
    metric = load_metric(spec.metric_ref) or exact_match
    out_fields = output_fields(signature_of(program))
    train, train_rows = _examples(spec.train, out_fields)
    val, val_rows = _examples(spec.val, out_fields)
    holdout, holdout_rows = _examples(spec.holdout, out_fields)
    if not train or not holdout:
        raise ValueError(
            f"no usable examples for outputs {out_fields} (train={len(train)}, "
            f"holdout={len(holdout)})"
        )

    meter = Meter(
        lm,
        reporter,
        max_lm_calls=spec.max_lm_calls,
        max_tokens=spec.max_tokens,
        expected_calls=len(train),
    )
    logging.getLogger("dspy.teleprompt").addHandler(TrialLogHandler(meter))
    logging.getLogger("dspy.teleprompt").setLevel(logging.INFO)
    configure_lm(lm, callbacks=[meter])  # the adapter the workers serve with
    ticker = Ticker(meter, spec.report_interval_s)
    ticker.start()
    add_progress_listener(meter.on_training)

    params = dict(spec.params)
    optimizer = create_optimizer(spec.optimizer, metric=metric, lm=lm, **params)
    if "num_threads" not in params and hasattr(optimizer.teleprompter, "num_threads"):
        optimizer.teleprompter.num_threads = spec.num_threads
    if hasattr(optimizer.teleprompter, "num_candidate_sets"):
        meter.trial_total = int(optimizer.teleprompter.num_candidate_sets) + 3

    def phase(name: str, event: str, **scores: Any) -> None:
        reporter.send({"type": "phase", "phase": name, "event": event, **scores})

    phase("compile", "start")
    candidate = compile_program(program, train, optimizer, valset=val or None, lm=lm)
    phase("compile", "end")

    meter.phase, meter.phase_fraction = "evaluate", 0.0
    phase("evaluate", "start")
    current, current_source = build_program(spec.program_ref), "code"
    if spec.current_state is not None:
        try:
            current = load_state_into(spec.current_state, spec.current_signature or {}, current)
            current_source = f"version {spec.current_version}"
        except IncompatibleProgram as exc:
            log.warning("comparing against the code's own program: %s", exc)
    served = None  # when the code's program stands in for a version that did not load: re-ask
    if spec.reuse_served and (spec.current_state is None or current_source != "code"):
        version = None if spec.current_state is None else str(spec.current_version)
        served = served_answers(holdout_rows, out_fields, version)
    before = evaluate(current, holdout, metric, num_threads=spec.num_threads, known=served)
    meter.phase_fraction = 0.5
    after = evaluate(candidate, holdout, metric, num_threads=spec.num_threads)
    meter.phase_fraction = 1.0
    phase("evaluate", "end", current=before.as_dict(), candidate=after.as_dict())
    ticker.stop()
    adapter = program_adapter(candidate)

    usage = meter.usage()
    rusage = resource.getrusage(resource.RUSAGE_SELF)
    return CompileResult(
        state=state_without_lms(candidate),
        signature=signature_of(candidate),
        current_score=before.score,
        candidate_score=after.score,
        current_errors=before.errors,
        candidate_errors=after.errors,
        holdout_size=len(holdout),
        lm_calls=usage["lm_calls"],
        tokens=usage["tokens"],
        lm_errors=usage["lm_errors"],
        cpu_s=rusage.ru_utime + rusage.ru_stime,
        dropped_examples=sum(map(len, (spec.train, spec.val, spec.holdout)))
        - sum(map(len, (train_rows, val_rows, holdout_rows))),
        trials=meter.trials,
        current_source=current_source,
        current_served=sum(answer is not None for answer in served or ()),
        peak_rss_mb=_peak_rss_mb(),
        current_scores=list(before.scores),
        candidate_scores=list(after.scores),
        current_confusion=before.confusion,
        candidate_confusion=after.confusion,
        adapter=dataclasses.asdict(adapter) if adapter is not None else None,
    )


def state_without_lms(program: Any) -> dict[str, Any]:
    """``program.dump_state()`` without its predictors' LMs: a published version never brings
    an LM (workers keep their own; a fine-tuned one names its adapter beside the state), and
    an LM on the shared server's engine cannot be saved at all."""
    predictors = [p for _, p in program.named_predictors()]
    lms = [p.lm for p in predictors]
    for predictor in predictors:
        predictor.lm = None
    try:
        state: dict[str, Any] = program.dump_state()
    finally:
        for predictor, lm in zip(predictors, lms, strict=True):
            predictor.lm = lm
    return state


def _peak_rss_mb() -> float | None:
    """This process's own peak RSS (VmHWM; ru_maxrss would include the parent before exec)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        pass
    return None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m dspy_flywheel.optimizer.job")
    parser.add_argument("--spec", required=True, type=Path)
    args = parser.parse_args(argv)
    spec = JobSpec.read(args.spec)
    _limit_memory(spec.memory_mb)
    stream = report_stream()
    watch_parent(EXIT_ORPHANED)
    logging.basicConfig(
        level=logging.WARNING,
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )

    from dspy_flywheel.compile.errors import CompileError
    from dspy_flywheel.optimizer.meter import Reporter

    reporter = Reporter(stream)
    started = time.monotonic()
    try:
        result = run(spec, reporter)
        result.write(Path(spec.result_path))
    except MemoryError:
        # Free what we can before reporting: the report itself needs a little memory.
        message = f"memory limit of {spec.memory_mb} MB exceeded"
        reporter.send({"type": "error", "kind": "memory", "message": message})
        return EXIT_MEMORY
    except CompileError as exc:
        reporter.send({"type": "error", "kind": "config", "message": str(exc)})
        return EXIT_ERROR
    except Exception as exc:
        log.exception("compile failed")
        reporter.send({"type": "error", "kind": "error", "message": f"{type(exc).__name__}: {exc}"})
        return EXIT_ERROR
    reporter.send(
        {
            "type": "result",
            "result_path": spec.result_path,
            "wall_s": time.monotonic() - started,
            "summary": {
                "current_score": result.current_score,
                "candidate_score": result.candidate_score,
                "lm_calls": result.lm_calls,
                "tokens": result.tokens,
            },
        }
    )
    return 0


if __name__ == "__main__":
    code = main()
    sys.stdout.flush()
    os._exit(code)  # skip interpreter teardown: DSPy's thread pools can delay a normal exit
