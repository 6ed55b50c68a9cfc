"""Simulated live canaries: how often the sequential rule is wrong, how fast it decides.

Pure simulation, no IO, seeded. Each simulated canary routes every call to the candidate with
probability ``share`` (10 %); every call is labeled; a call is correct with its version's true
accuracy. After every label the rule of ``dspy_flywheel.rollout.sequential`` (the same
functions the controller calls, run on arrays) decides promote / roll back / continue, and the
canary keeps the current version when ``max_samples`` labels pass without a decision.

Scenarios: the candidate's true accuracy equals the current one's (0.70), or is 5 or 10 points
better or worse; two guard scenarios watch a promoted version against its predecessor's 900
live labels (equal accuracy; a 10-point drop).

Figures (last line):
- ``false_rollback_rate``: share of equal candidates rolled back (must be <= alpha);
- ``false_promote_rate``: share of 5-points-worse candidates promoted (must be <= alpha);
- ``mean_labels_to_decide``: labels (both versions) until the decision, over every canary of
  the five scenarios (a canary that hits the cap counts ``max_samples``);
- ``harmful_exposure``: over the worse candidates, the share of the calls of a
  ``max_samples``-call period that the worse version served (until its rollback, or the cap;
  a wrongly promoted one serves every call after its promotion);
- ``power_5pts`` / ``power_10pts``: share of 5 / 10-points-better candidates promoted.

Run: ``.venv/bin/python tests/bench/rollout_sim.py [--canaries 2000] [--seed 7]``

``--pair CURRENT CANDIDATE`` simulates that one canary instead (e.g. the demo's settings:
``--pair 0.4 0.8 --share 0.5 --min-samples 10 --max-samples 400 --tau 0.2``) and prints how
many labels it took to decide.
"""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from dspy_flywheel.rollout.sequential import (
    CONTINUE,
    PROMOTE,
    ROLLBACK,
    SequentialConfig,
    canary_codes,
    guard_codes,
)

BASE_ACCURACY = 0.70
GUARD_BASELINE_LABELS = 900
_BLOCK = 256


@dataclass
class Result:
    outcome: npt.NDArray[np.int8]  # PROMOTE / ROLLBACK / CONTINUE (= kept at the cap)
    labels: npt.NDArray[np.int64]  # labels until the decision
    candidate_calls: npt.NDArray[np.int64]  # calls the candidate served until the decision


def simulate(
    rng: np.random.Generator,
    runs: int,
    p_current: float,
    p_candidate: float,
    share: float,
    config: SequentialConfig,
    *,
    guard: bool = False,
) -> Result:
    """Run ``runs`` canaries (or, with ``guard``, post-promotion watches) to a decision."""
    n0 = np.zeros(runs, np.int64)
    k0 = np.zeros(runs, np.int64)
    if guard:  # the predecessor's frozen live record
        n0[:] = GUARD_BASELINE_LABELS
        k0[:] = rng.binomial(GUARD_BASELINE_LABELS, p_current, runs)
        share = 1.0
    n1 = np.zeros(runs, np.int64)
    k1 = np.zeros(runs, np.int64)
    outcome = np.full(runs, CONTINUE, np.int8)
    labels = np.full(runs, config.max_samples, np.int64)
    served = np.zeros(runs, np.int64)
    active = np.arange(runs)
    done = 0
    while active.size and done < config.max_samples:
        steps = min(_BLOCK, config.max_samples - done)
        shape = (active.size, steps)
        to_candidate = rng.random(shape) < share
        correct = rng.random(shape) < np.where(to_candidate, p_candidate, p_current)
        c_n1 = n1[active, None] + np.cumsum(to_candidate, axis=1)
        c_k1 = k1[active, None] + np.cumsum(to_candidate & correct, axis=1)
        if guard:
            c_n0 = np.broadcast_to(n0[active, None], shape)
            c_k0 = np.broadcast_to(k0[active, None], shape)
            codes = guard_codes(c_n0, c_k0, c_n1, c_k1, config)
        else:
            c_n0 = n0[active, None] + np.cumsum(~to_candidate, axis=1)
            c_k0 = k0[active, None] + np.cumsum(~to_candidate & correct, axis=1)
            codes = canary_codes(c_n0, c_k0, c_n1, c_k1, config)
        decided = codes != CONTINUE
        hit = decided.any(axis=1)
        first = decided.argmax(axis=1)
        rows = active[hit]
        outcome[rows] = codes[hit, first[hit]]
        labels[rows] = done + first[hit] + 1
        served[rows] = c_n1[hit, first[hit]]
        keep = ~hit
        n0[active] = c_n0[:, -1]
        k0[active] = c_k0[:, -1]
        n1[active] = c_n1[:, -1]
        k1[active] = c_k1[:, -1]
        served[active[keep]] = c_n1[keep, -1]
        active = active[keep]
        done += steps
    return Result(outcome, labels, served)


def exposure(result: Result, horizon: int) -> npt.NDArray[np.float64]:
    """Share of a ``horizon``-call period served by the candidate (all calls after a promotion)."""
    after_promotion = np.where(result.outcome == PROMOTE, horizon - result.labels, 0)
    return (result.candidate_calls + after_promotion) / horizon


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--canaries", type=int, default=2000, help="per scenario")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--share", type=float, default=0.10)
    defaults = SequentialConfig()
    parser.add_argument("--alpha", type=float, default=defaults.alpha)
    parser.add_argument("--margin", type=float, default=defaults.margin)
    parser.add_argument("--tau", type=float, default=defaults.tau)
    parser.add_argument("--min-samples", type=int, default=defaults.min_samples)
    parser.add_argument("--max-samples", type=int, default=defaults.max_samples)
    parser.add_argument("--pair", type=float, nargs=2, metavar=("CURRENT", "CANDIDATE"))
    args = parser.parse_args()
    config = SequentialConfig(
        alpha=args.alpha,
        margin=args.margin,
        tau=args.tau,
        min_samples=args.min_samples,
        max_samples=args.max_samples,
    )
    rng = np.random.default_rng(args.seed)
    if args.pair:
        _pair(rng, args.canaries, args.pair[0], args.pair[1], args.share, config)
        return
    started = time.perf_counter()
    print(
        f"{args.canaries} canaries per scenario, share {args.share:.0%}, current accuracy "
        f"{BASE_ACCURACY:.2f}, alpha {config.alpha}, margin {config.margin}, tau {config.tau}, "
        f"min_samples {config.min_samples}, max_samples {config.max_samples}, seed {args.seed}"
    )
    print(
        f"{'scenario':<22}{'promote':>9}{'rollback':>9}{'kept':>7}{'mean labels':>13}"
        f"{'p50':>8}{'exposure':>10}"
    )
    results: dict[float, Result] = {}
    for delta in (0.0, 0.05, -0.05, 0.10, -0.10):
        r = simulate(rng, args.canaries, BASE_ACCURACY, BASE_ACCURACY + delta, args.share, config)
        results[delta] = r
        _row(f"canary {delta * 100:+.0f} pts", r, config.max_samples)
    guards = {}
    for delta in (0.0, -0.10):
        r = simulate(
            rng, args.canaries, BASE_ACCURACY, BASE_ACCURACY + delta, 1.0, config, guard=True
        )
        guards[delta] = r
        _row(f"guard {delta * 100:+.0f} pts", r, config.max_samples)
    worse = np.concatenate([exposure(results[d], config.max_samples) for d in (-0.05, -0.10)])
    all_labels = np.concatenate([r.labels for r in results.values()])
    print(f"simulated in {time.perf_counter() - started:.1f} s")
    print(
        f"rollout_sim false_rollback_rate={_rate(results[0.0], ROLLBACK):.4f} "
        f"false_promote_rate={_rate(results[-0.05], PROMOTE):.4f} "
        f"mean_labels_to_decide={all_labels.mean():.0f} "
        f"harmful_exposure={worse.mean():.4f} "
        f"power_5pts={_rate(results[0.05], PROMOTE):.4f} "
        f"power_10pts={_rate(results[0.10], PROMOTE):.4f}"
    )


def _pair(
    rng: np.random.Generator,
    runs: int,
    current: float,
    candidate: float,
    share: float,
    config: SequentialConfig,
) -> None:
    r = simulate(rng, runs, current, candidate, share, config)
    p50, p90 = np.percentile(r.labels, [50, 90])
    print(
        f"rollout_sim pair current={current} candidate={candidate} share={share} "
        f"tau={config.tau} min_samples={config.min_samples} canaries={runs} "
        f"promoted={_rate(r, PROMOTE):.4f} rolled_back={_rate(r, ROLLBACK):.4f} "
        f"labels_p50={p50:.0f} labels_p90={p90:.0f}"
    )


def _rate(result: Result, code: int) -> float:
    return float((result.outcome == code).mean())


def _row(name: str, r: Result, horizon: int) -> None:
    print(
        f"{name:<22}{_rate(r, PROMOTE):>9.3f}{_rate(r, ROLLBACK):>9.3f}"
        f"{_rate(r, CONTINUE):>7.3f}{r.labels.mean():>13.0f}{np.median(r.labels):>8.0f}"
        f"{exposure(r, horizon).mean():>10.4f}"
    )


if __name__ == "__main__":
    main()
