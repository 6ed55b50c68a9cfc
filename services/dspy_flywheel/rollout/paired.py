"""The offline ship gate: is the candidate better than the current program on the same holdout?

Pure statistics, no IO. Both programs answer the *same* holdout examples, so the comparison is
paired: only the examples where they disagree carry evidence. Per example we count

- ``b``: the candidate is right and the current program is wrong,
- ``c``: the current program is right and the candidate is wrong,

and the gain in accuracy is ``(b - c) / n``. A candidate is published only when

1. the holdout has at least ``min_holdout`` examples (else: "needs more labeled data"),
2. the exact one-sided test on the discordant pairs (McNemar's exact test, a sign test:
   ``b ~ Binomial(b + c, 1/2)`` when neither is better) gives ``p < (1 - confidence) / 2``, and
3. the lower end of the two-sided ``confidence`` interval of the gain (Tango's score interval
   for paired proportions, Stat. Med. 1998; it reduces to McNemar's test at a gain of 0) is
   above ``margin``.

(2) and (3) test at the same one-sided level, ``(1 - confidence) / 2`` (2.5 % by default): the
exact test keeps small holdouts honest where the score interval is only approximately right;
the interval is what makes a margin above 0 testable and what an operator reads.

Why ``min_holdout`` defaults to 30: at the default confidence the exact test needs at least 6
discordant pairs, all won by the candidate. An optimization that really gains 20 points (0.6 to
0.8: 25 % of examples won, 5 % lost) passes on 20 examples 20 % of the time, on 30 40 %, on 50
70 %, on 100 96 % (exact powers, ``tests/unit/test_rollout_paired.py``), while a candidate that
is no better passes at most 2.5 % of the time at any size. 30 is the smallest holdout on which
a real 20-point gain is found in a sizable share of jobs; below it a compile is mostly wasted,
so the job refuses before compiling and says how many labeled examples it needs.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from fractions import Fraction
from statistics import NormalDist
from typing import Any

_BISECT_STEPS = 60


@dataclass(frozen=True)
class GateConfig:
    confidence: float = 0.95
    margin: float = 0.0
    min_holdout: int = 30

    def __post_init__(self) -> None:
        if not 0.5 < self.confidence < 1.0:
            raise ValueError(f"confidence must be in (0.5, 1), got {self.confidence}")
        if not -1.0 < self.margin < 1.0:
            raise ValueError(f"margin must be in (-1, 1), got {self.margin}")
        if self.min_holdout < 1:
            raise ValueError(f"min_holdout must be >= 1, got {self.min_holdout}")

    @property
    def one_sided_alpha(self) -> float:
        return (1.0 - self.confidence) / 2.0


@dataclass(frozen=True)
class PairedCounts:
    """Outcomes of current and candidate on the same ``n`` examples."""

    n: int
    both: int  # both right
    b: int  # only the candidate right
    c: int  # only the current program right

    def __post_init__(self) -> None:
        if min(self.n, self.both, self.b, self.c) < 0 or self.both + self.b + self.c > self.n:
            raise ValueError(f"inconsistent paired counts: {self}")

    @classmethod
    def from_outcomes(cls, current: Sequence[bool], candidate: Sequence[bool]) -> PairedCounts:
        """Per-example correctness of both programs, in the same example order."""
        if len(current) != len(candidate):
            raise ValueError(
                f"paired outcomes differ in length: {len(current)} current, "
                f"{len(candidate)} candidate"
            )
        both = b = c = 0
        for cur_ok, cand_ok in zip(current, candidate, strict=True):
            both += cur_ok and cand_ok
            b += cand_ok and not cur_ok
            c += cur_ok and not cand_ok
        return cls(len(current), both, b, c)

    @property
    def gain(self) -> float:
        return (self.b - self.c) / self.n if self.n else 0.0


@dataclass(frozen=True)
class GateDecision:
    publish: bool
    reason: str
    n: int
    b: int
    c: int
    gain: float  # candidate accuracy minus current accuracy on the holdout
    interval: tuple[float, float] | None  # two-sided, at ``confidence``
    p_value: float | None  # exact one-sided sign test on the discordant pairs
    confidence: float
    margin: float
    min_holdout: int

    def record(self) -> dict[str, Any]:
        """JSON-ready, for the registry row, the status event and the API."""
        out = asdict(self)
        out["interval"] = list(self.interval) if self.interval else None
        return out


def sign_test_p(b: int, c: int) -> float:
    """P(X >= b) for X ~ Binomial(b + c, 1/2): the exact one-sided McNemar p-value."""
    m = b + c
    if m == 0:
        return 1.0
    tail = sum(math.comb(m, k) for k in range(b, m + 1))
    return float(Fraction(tail, 2**m))


def _tango_z(counts: PairedCounts, delta: float) -> float:
    """Tango's score statistic for H0: gain = ``delta`` (large when the gain is above delta)."""
    n, b, c = counts.n, counts.b, counts.c
    a = 2.0 * n
    bb = -b - c + (2.0 * n - b + c) * delta
    cc = -c * delta * (1.0 - delta)
    q21 = (math.sqrt(max(bb * bb - 4.0 * a * cc, 0.0)) - bb) / (2.0 * a)
    variance = n * (2.0 * q21 + delta * (1.0 - delta))
    diff = b - c - n * delta
    if variance <= 0.0:
        return math.copysign(math.inf, diff) if diff else 0.0
    return diff / math.sqrt(variance)


def _root(counts: PairedCounts, z: float) -> float:
    """The gain ``delta`` where Tango's statistic equals ``z`` (it decreases in delta)."""
    lo, hi = -1.0, 1.0
    for _ in range(_BISECT_STEPS):
        mid = (lo + hi) / 2.0
        lo, hi = (mid, hi) if _tango_z(counts, mid) > z else (lo, mid)
    return (lo + hi) / 2.0


def score_interval(counts: PairedCounts, confidence: float) -> tuple[float, float]:
    """Two-sided Tango score interval for the paired gain in accuracy."""
    if counts.n == 0:
        return (-1.0, 1.0)
    z = NormalDist().inv_cdf(0.5 + confidence / 2.0)
    return (_root(counts, z), _root(counts, -z))


def pts(x: float) -> str:
    """A difference of accuracies in points, signed: ``+12.5 pts``."""
    return f"{x * 100:+.1f} pts"


def too_small(n: int, config: GateConfig | None = None) -> GateDecision | None:
    """The refusal for a holdout of ``n`` examples below ``min_holdout`` (None when big enough);
    a job checks this before it compiles anything."""
    config = config or GateConfig()
    if n >= config.min_holdout:
        return None
    reason = (
        f"not published: the holdout has {n} example(s), below the minimum of "
        f"{config.min_holdout}; needs more labeled data"
    )
    return _decision(False, reason, PairedCounts(n, 0, 0, 0), config)


def _decision(
    publish: bool,
    reason: str,
    counts: PairedCounts,
    config: GateConfig,
    interval: tuple[float, float] | None = None,
    p: float | None = None,
) -> GateDecision:
    n, b, c, gain = counts.n, counts.b, counts.c, counts.gain
    return GateDecision(publish, reason, n, b, c, gain, interval, p, **asdict(config))


def decide(counts: PairedCounts, config: GateConfig | None = None) -> GateDecision:
    """Publish or not, with the evidence and the reason in words."""
    config = config or GateConfig()
    refused = too_small(counts.n, config)
    pairs = (
        f"{counts.b} example(s) only the candidate got right, {counts.c} only the current "
        f"program got right (n={counts.n})"
    )
    interval = score_interval(counts, config.confidence) if counts.n else None
    p = sign_test_p(counts.b, counts.c)
    if refused is not None:
        return _decision(False, f"{refused.reason} ({pairs})", counts, config, interval, p)
    assert interval is not None  # n >= min_holdout >= 1
    level = f"{config.confidence:.0%}"
    evidence = (
        f"gain {pts(counts.gain)}, {level} interval [{pts(interval[0])}, {pts(interval[1])}], "
        f"exact test p={p:.3g}; {pairs}"
    )
    if interval[0] <= config.margin:
        publish = False
        why = (
            f"the candidate is not better than the current program by more than the margin "
            f"{pts(config.margin)} at {level} confidence (the interval reaches down to it)"
        )
    elif p >= config.one_sided_alpha:
        publish = False
        why = (
            "the candidate is not better than the current program at "
            f"{level} confidence (the exact test on the discordant pairs gives "
            f"p >= {config.one_sided_alpha:.3g})"
        )
    else:
        publish = True
        why = f"better than the current program by more than the margin {pts(config.margin)}"
    verdict = "published" if publish else "not published"
    return _decision(publish, f"{verdict}: {why}: {evidence}", counts, config, interval, p)
