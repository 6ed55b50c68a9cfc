"""How often the offline ship gate publishes a candidate of a given true gain, by holdout size.

Pure simulation, no IO, seeded. Each simulated holdout example is won by the candidate alone
with probability ``b``, by the current program alone with probability ``c`` (else both agree);
the gate is ``dspy_flywheel.rollout.paired.decide`` at its defaults (95 %, margin 0).

Run: ``.venv/bin/python tests/bench/gate_power.py [--rates 0.26:0 0.29:0.065] [--sizes 31 45 60]``
Last line: ``gate_power <b>:<c>@<n>=<share published> ...``.
"""

from __future__ import annotations

import argparse

import numpy as np

from dspy_flywheel.rollout.paired import GateConfig, PairedCounts, decide


def published_share(b: float, c: float, n: int, trials: int, rng: np.random.Generator) -> float:
    draws = rng.random((trials, n))
    wins, losses = (draws < b).sum(axis=1), ((draws >= b) & (draws < b + c)).sum(axis=1)
    config = GateConfig(min_holdout=min(30, n))
    published = [
        decide(PairedCounts(n=n, both=0, b=int(w), c=int(x)), config).publish
        for w, x in zip(wins, losses, strict=True)
    ]
    return float(np.mean(published))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rates", nargs="+", default=["0.26:0", "0.27:0.03", "0.29:0.065"])
    parser.add_argument("--sizes", nargs="+", type=int, default=[31, 45, 60])
    parser.add_argument("--trials", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    rng = np.random.default_rng(args.seed)
    figures = []
    for rate in args.rates:
        b, c = (float(x) for x in rate.split(":"))
        for n in args.sizes:
            share = published_share(b, c, n, args.trials, rng)
            print(f"b={b:.3f} c={c:.3f} n={n:3d}: published {share:.1%}")
            figures.append(f"{rate}@{n}={share:.3f}")
    print("gate_power " + " ".join(figures))


if __name__ == "__main__":
    main()
