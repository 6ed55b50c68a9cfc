"""Command line of the quality benchmark, the optimizer names and the split check.

Budget defaults (train 98 / dev 20 / test 50, 4+4 demos, BootstrapRS with 2 random candidates
plus its 3 fixed ones, MIPROv2 light without the program- and data-aware proposers) hold the
built-in classification task to about 580 LM calls for all four rows. With the 1.5B embedded
model that should take about 25 minutes on 2 free cores (an estimate, at ~2.5 s a call); with
the cores shared by other work it took 73 minutes (tests/bench/results/quality_classification.txt).
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

BASELINE = "baseline"
BOOTSTRAP = "BootstrapFewShot"
RANDOM_SEARCH = "BootstrapFewShotWithRandomSearch"
MIPRO = "MIPROv2"
STRATIFIED = "StratifiedFewShot"
RETRIEVAL = "RetrievalFewShot"
CASCADE = "RetrievalCascade"
FINETUNE = "BootstrapFinetune"  # not in "all": it needs the finetune extra and trains a model
ALL_OPTIMIZERS: tuple[str, ...] = (
    BASELINE,
    BOOTSTRAP,
    RANDOM_SEARCH,
    MIPRO,
    STRATIFIED,
    RETRIEVAL,
    CASCADE,
)
SHORT_NAMES: dict[str, str] = {
    BASELINE: "baseline",
    BOOTSTRAP: "BootstrapFewShot",
    RANDOM_SEARCH: "BootstrapRS",
    MIPRO: "MIPROv2-light",
    STRATIFIED: "Stratified",
    RETRIEVAL: "Retrieval",
    CASCADE: "Cascade",
    FINETUNE: "BootstrapFinetune",
}
_ALIASES: dict[str, str] = {
    "baseline": BASELINE,
    "zeroshot": BASELINE,
    "zero-shot": BASELINE,
    "bootstrapfewshot": BOOTSTRAP,
    "bootstrap": BOOTSTRAP,
    "bfs": BOOTSTRAP,
    "bootstrapfewshotwithrandomsearch": RANDOM_SEARCH,
    "bootstraprs": RANDOM_SEARCH,
    "randomsearch": RANDOM_SEARCH,
    "mipro": MIPRO,
    "miprov2": MIPRO,
    "miprov2-light": MIPRO,
    "stratifiedfewshot": STRATIFIED,
    "stratified": STRATIFIED,
    "retrievalfewshot": RETRIEVAL,
    "retrieval": RETRIEVAL,
    "retrievalcascade": CASCADE,
    "cascade": CASCADE,
    "bootstrapfinetune": FINETUNE,
    "finetune": FINETUNE,
}
MIN_TEST = 50


class OptionsError(ValueError):
    """A command line the benchmark refuses (bad split, unknown optimizer, ...)."""


@dataclass(frozen=True, slots=True)
class Options:
    task: str | None
    dataset: str | None
    signature: str | None
    metric: str
    seed: int
    train: int
    dev: int
    test: int | None
    optimizers: tuple[str, ...]
    model: str
    adapter: str
    threads: int
    lm_threads: int | None
    demos: int
    labeled: int
    rs_candidates: int
    mipro_program_aware: bool
    mipro_data_aware: bool
    heartbeat_s: float
    verbose: bool
    instructions: str | None = None
    suite: tuple[str, ...] = ()
    results: str | None = None
    name: str | None = None
    only: tuple[str, ...] = ()
    test_limit: int | None = None

    @property
    def task_label(self) -> str:
        if self.name is not None:
            return self.name
        if self.task is not None:
            return self.task
        from pathlib import Path

        return Path(self.dataset or "dataset").stem


def parse_optimizers(text: str) -> tuple[str, ...]:
    """'baseline,bootstrap,mipro' -> canonical names, in the given order, without repeats."""
    names: list[str] = []
    for part in text.split(","):
        key = part.strip().lower().replace("_", "")
        if not key:
            continue
        if key == "all":
            found: Sequence[str] = ALL_OPTIMIZERS
        elif key in _ALIASES:
            found = (_ALIASES[key],)
        else:
            raise OptionsError(
                f"unknown optimizer {part.strip()!r}; choose from "
                f"{', '.join(ALL_OPTIMIZERS)} (aliases: bootstrap, bootstraprs, mipro, all)"
            )
        names.extend(n for n in found if n not in names)
    if not names:
        raise OptionsError("--optimizers names no optimizer")
    return tuple(names)


def check_split(
    total: int, train: int, dev: int, test: int | None = None, *, min_test: int = MIN_TEST
) -> int:
    """The test size (``test``, or every example left after train and dev); refuses a test
    under ``min_test`` or a split larger than the data."""
    if train < 1 or dev < 1:
        raise OptionsError(f"--train and --dev must be at least 1 (got {train} and {dev})")
    if test is not None and train + dev + test > total:
        raise OptionsError(f"cannot split {total} examples into {train}/{dev}/{test}")
    test = total - train - dev if test is None else test
    if test < min_test:
        raise OptionsError(
            f"the test split would hold {test} examples ({total} total - {train} train - "
            f"{dev} dev); it needs at least {min_test}: lower --train/--dev to at most "
            f"{max(0, total - min_test)} together"
        )
    return test


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="quality.py",
        description="Test accuracy of zero-shot vs DSPy optimizers on a task, with cost figures.",
    )
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--task", help="built-in task: classification, extraction, reasoning")
    source.add_argument("--dataset", help="JSONL file, one example per line")
    source.add_argument(
        "--suite",
        nargs="+",
        help="task definitions (<name>.json) or folders of them, e.g. tests/bench/suite",
    )
    parser.add_argument(
        "--signature",
        help="with --dataset: 'in1, in2 -> out', typed fields allowed "
        "(\"ticket: str -> queue: Literal['billing', 'technical']\")",
    )
    parser.add_argument("--instructions", help="with --dataset: the signature's instructions")
    parser.add_argument(
        "--metric",
        default="exact",
        help="with --dataset: exact | f1 | module:attr (your own DSPy metric)",
    )
    parser.add_argument(
        "--only", default=None, help="with --suite: comma list of task names to run"
    )
    parser.add_argument(
        "--results",
        default=None,
        help="write the table here (--suite default: tests/bench/results)",
    )
    parser.add_argument("--seed", type=int, default=0, help="shuffle seed of the split")
    parser.add_argument("--train", type=int, default=98, help="train examples")
    parser.add_argument(
        "--dev", type=int, default=20, help="dev examples (valset of BootstrapRS and MIPROv2)"
    )
    parser.add_argument(
        "--test", type=int, default=None, help="test examples (default: all the rest)"
    )
    parser.add_argument(
        "--test-limit",
        type=int,
        default=None,
        help="score only the first N examples of the (fixed) test split: a named subset for "
        "when the LM is too slow for all of it",
    )
    parser.add_argument(
        "--optimizers",
        default="all",
        help="comma list of baseline, BootstrapFewShot, BootstrapFewShotWithRandomSearch, "
        "MIPROv2, StratifiedFewShot, RetrievalFewShot, RetrievalCascade (default: all)",
    )
    parser.add_argument("--model", default="qwen1.5b", help="qwen1.5b | smollm2 | /path/x.gguf")
    parser.add_argument(
        "--adapter",
        choices=("chat", "json"),
        default="chat",
        help="chat: the flywheel's InlineChatAdapter, as workers serve (default); json: JSON",
    )
    parser.add_argument(
        "--threads",
        type=int,
        default=None,
        help="DSPy threads (default: FLYWHEEL_LM_SLOTS, the calls the shared LM server runs "
        "at once)",
    )
    parser.add_argument(
        "--lm-threads",
        type=int,
        default=None,
        help="llama.cpp CPU threads (FLYWHEEL_LM_THREADS; 1 is faster while other "
        "processes load the cores)",
    )
    parser.add_argument("--demos", type=int, default=4, help="max bootstrapped demos")
    parser.add_argument("--labeled", type=int, default=4, help="max labeled demos")
    parser.add_argument(
        "--rs-candidates",
        type=int,
        default=2,
        help="BootstrapRS num_candidate_programs (it also tries 3 fixed seeds)",
    )
    parser.add_argument(
        "--mipro-program-aware",
        action="store_true",
        help="let MIPROv2's proposer describe the program code (slow on CPU)",
    )
    parser.add_argument(
        "--mipro-data-aware",
        action="store_true",
        help="let MIPROv2's proposer summarize the train set first (about 11 "
        "long generations; slow on CPU)",
    )
    parser.add_argument(
        "--heartbeat-s",
        type=float,
        default=30.0,
        help="seconds between progress lines inside a row",
    )
    parser.add_argument("--verbose", action="store_true", help="DSPy's own logs and bars")
    return parser


def parse_options(argv: Sequence[str] | None = None) -> Options:
    """Options from ``argv``; raises OptionsError for a command line the benchmark refuses."""
    args = build_parser().parse_args(argv)
    if args.dataset is not None and not args.signature:
        raise OptionsError("--dataset needs --signature 'in1, in2 -> out'")
    if args.dataset is None and (args.signature or args.instructions):
        raise OptionsError(
            "--signature goes with --dataset (so does --instructions); built-in and suite "
            "tasks have their own"
        )
    if args.metric not in ("exact", "f1") and ":" not in args.metric:
        raise OptionsError(f"--metric must be exact, f1 or module:attr, got {args.metric!r}")
    if (args.threads is not None and args.threads < 1) or (
        args.lm_threads is not None and args.lm_threads < 1
    ):
        raise OptionsError("--threads and --lm-threads must be at least 1")
    if args.test_limit is not None and args.test_limit < 1:
        raise OptionsError("--test-limit must be at least 1")
    if min(args.demos, args.labeled, args.rs_candidates) < 0:
        raise OptionsError("--demos, --labeled and --rs-candidates cannot be negative")
    return Options(
        task=args.task,
        dataset=args.dataset,
        signature=args.signature,
        metric=args.metric,
        seed=args.seed,
        train=args.train,
        dev=args.dev,
        test=args.test,
        optimizers=parse_optimizers(args.optimizers),
        model=args.model,
        adapter=args.adapter,
        threads=args.threads or _lm_slots(),
        lm_threads=args.lm_threads,
        demos=args.demos,
        labeled=args.labeled,
        rs_candidates=args.rs_candidates,
        mipro_program_aware=args.mipro_program_aware,
        mipro_data_aware=args.mipro_data_aware,
        heartbeat_s=args.heartbeat_s,
        verbose=args.verbose,
        instructions=args.instructions,
        suite=tuple(args.suite or ()),
        results=args.results,
        name=None,
        only=tuple(n.strip() for n in (args.only or "").split(",") if n.strip()),
        test_limit=args.test_limit,
    )


def _lm_slots() -> int:
    from dspy_flywheel.lm.settings import LMSettings

    return LMSettings().slots


def optimizer_kwargs(name: str, options: Options) -> dict[str, Any]:
    """What ``DSPyAgent.create_optimizer`` gets for ``name`` under the run's budget."""
    demos = {"max_bootstrapped_demos": options.demos, "max_labeled_demos": options.labeled}
    if name == BOOTSTRAP:
        return dict(demos)
    if name == RANDOM_SEARCH:
        return {
            **demos,
            "num_candidate_programs": options.rs_candidates,
            "num_threads": options.threads,
        }
    if name == MIPRO:
        # auto="light" fixes trials and candidates (6 demo sets, 3 instructions, 10 trials for
        # one predictor); the dev size and the proposer switches are what bound its cost here.
        return {
            **demos,
            "auto": "light",
            "num_threads": options.threads,
            "seed": options.seed,
            "program_aware_proposer": options.mipro_program_aware,
            "data_aware_proposer": options.mipro_data_aware,
        }
    if name in (STRATIFIED, RETRIEVAL, CASCADE):
        return {"seed": options.seed}  # the strategies' own demo budgets
    if name == FINETUNE:  # the catalog's teacher and finetune.params.TrainParams defaults
        return {"num_threads": options.threads}
    raise OptionsError(f"{name} is not an optimizer")
