"""PII anonymization: removal per kind on two annotated sets, look-alikes kept, throughput.

    python tests/bench/pii_quality.py [--seconds 2] [--no-speed] [--split S]
                                      [--spacy-model en_core_web_sm] [--presidio]

Sets (``tests/data``): *project* (``pii_cases.jsonl``: a *dev* split written together with
the first recognizers, *holdout* and *holdout2* written after freezing them) and *world*
(``pii_cases_world.jsonl``: written for issue 15 before its recognizers were read; UK, DE,
FR, IN, BR, US and other phone, ID and IBAN formats, names of many origins, several values
per message, look-alikes annotated one by one). Scoring (``tests/fixtures/pii_scoring.py``): a
value is removed when all its letters and digits are inside predicted spans; a look-alike is
kept when no span touches it. Every miss, touched look-alike and stray span is printed, and one
``acceptance`` line per set checks issue 15's bounds (recall >= 0.99 per kind and >= 0.995
overall, look-alikes kept >= 0.97).

Throughput is strings per CPU-second of one thread (``time.thread_time``, so other load on
a shared machine does not skew it) for ``Anonymizer.anonymize``, next to a baseline of
``str.lower`` over the same inputs in the same run, on two sets of ~200-char inputs:
*typical* (prose like worker inputs; one in ten carries one PII value) and *dense* (case
texts joined: every input holds several PII values and look-alikes - a worst case).

``--spacy-model`` also scores person names with spaCy NER instead of the cue/list
recognizer; ``--presidio`` scores Microsoft Presidio's analyzer (needs
presidio-analyzer and a spaCy model) on the kinds it supports. Both are optional imports.

Last lines: ``pii_quality set=… recall=… precision=… look_alikes_kept=…`` per set, then
``pii_quality acceptance=PASS|FAIL strings_per_s=…`` (typical inputs).
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import repo_root  # noqa: F401  # first: the repository root, for tests.fixtures
from tests.fixtures.pii_scoring import Case, Report, load_cases, score

from dspy_flywheel.privacy import (
    BUILTIN_KINDS,
    IPV4,
    IPV6,
    PERSON,
    Anonymizer,
    Span,
    default_recognizers,
)

DATA = Path(__file__).resolve().parents[1] / "data"
# "project": written with the recognizers (dev) plus two holdouts; "world": written before
# the recognizers of issue 15 were read, many countries' formats (see the README).
SETS = {"project": DATA / "pii_cases.jsonl", "world": DATA / "pii_cases_world.jsonl"}
# Written after the code of issue 15 was frozen and scored once (recall 0.917, 44 of 48; all
# 34 look-alikes kept) before its 4 misses were looked at and their classes fixed; printed,
# not held to the bounds.
HOLDOUT = {"holdout": DATA / "pii_cases_holdout.jsonl"}
KEY = b"bench-key-0123456789abcdef"


def print_table(title: str, report: Report, kinds: list[str]) -> None:
    print(f"\n{title}")
    print(f"{'kind':<12} {'values':>6} {'removed':>7} {'recall':>7} {'exact':>6} {'spans':>6} "
          f"{'stray':>5} {'precision':>9}")  # fmt: skip
    shown = [k for k in kinds if k in report.by_kind] + sorted(set(report.by_kind) - set(kinds))
    rows = [(kind, report.by_kind[kind]) for kind in shown]
    rows += [("regex kinds", report.total([k for k in shown if k != PERSON])),
             ("all", report.total(shown))]  # fmt: skip
    for name, e in rows:
        print(f"{name:<12} {e.values:>6} {e.removed:>7} {e.recall:>7.3f} {e.exact:>6} "
              f"{e.spans:>6} {e.stray:>5} {e.precision:>9.3f}")  # fmt: skip
    print(f"look-alikes kept {report.look_alikes_kept}/{report.look_alikes} "
          f"= {report.kept_rate:.3f}")  # fmt: skip
    for case_id, kind, text in report.misses:
        print(f"  miss        {case_id:<16} {kind:<12} {text!r}")
    for case_id, kind, text in report.touched:
        print(f"  look-alike hit {case_id:<16} {kind:<10} {text!r}")
    for case_id, kind, text in report.false_alarms:
        print(f"  stray span  {case_id:<16} {kind:<12} {text!r}")


def verdict(name: str, report: Report) -> bool:
    """The acceptance of issue 15: recall >= 0.99 per kind and >= 0.995 overall, kept >= 0.97."""
    worst = min(report.by_kind.values(), key=lambda e: e.recall if e.values else 1.0)
    worst_kind = next(k for k, e in report.by_kind.items() if e is worst)
    total = report.total()
    ok = worst.recall >= 0.99 and total.recall >= 0.995 and report.kept_rate >= 0.97
    verdict_word = "PASS" if ok else "FAIL"
    print(
        f"acceptance {name}: recall={total.recall:.4f} (>=0.995) "
        f"worst_kind={worst_kind}:{worst.recall:.3f} (>=0.99) "
        f"look_alikes_kept={report.kept_rate:.3f} (>=0.97) -> {verdict_word}"
    )
    return ok


PROSE = [
    "Summarize the customer's complaint about the delayed shipment and suggest next steps.",
    "The retrieval step returned three passages; the answer should cite the second one.",
    "Can you explain why the nightly job failed after the dependency upgrade last week?",
    "Translate the following paragraph into French, keeping the product names unchanged.",
    "Our team wants a short status update for the quarterly review meeting on Thursday.",
    "The user asked how to reset the device to factory settings without losing photos.",
    "Classify the sentiment of this review as positive, negative, or neutral, with a reason.",
    "Write a polite reply declining the refund, since the return window closed in March.",
    "The model answered correctly but the explanation skipped the unit conversion step.",
    "List the three most common causes of timeouts in the payment service this month.",
    "Please rewrite the release notes so a non-technical reader understands the changes.",
    "Extract the invoice total, the due date and the vendor name from the text below.",
    "Is the claim in the second sentence supported by the attached report? Answer briefly.",
    "The chatbot should apologize for the outage and offer a credit of 10 percent.",
    "Draft three interview questions about distributed systems for a senior engineer.",
    "Compare the two pricing plans and recommend one for a team of twelve people.",
]


def prose_inputs(cases: list[Case], count: int = 200, length: int = 200) -> list[str]:
    """~`length`-char prose; every tenth input carries one PII-bearing case text."""
    with_pii = [case.text for case in cases if case.expected]
    inputs = []
    for index in range(count):
        text = PROSE[index % len(PROSE)]
        step = 1
        while len(text) < length:
            text += " " + PROSE[(index + 7 * step) % len(PROSE)]
            step += 1
        if index % 10 == 0:
            text = text[: length - 60] + " " + with_pii[index // 10 % len(with_pii)]
        inputs.append(text[: length + 40])
    return inputs


def dense_inputs(cases: list[Case], length: int = 200) -> list[str]:
    """Consecutive case texts joined until each input is at least `length` chars."""
    inputs, current = [], ""
    for case in cases:
        current = f"{current} {case.text}" if current else case.text
        if len(current) >= length:
            inputs.append(current)
            current = ""
    return inputs


def rate(func: Callable[[str], Any], inputs: list[str], seconds: float) -> float:
    """Calls per CPU-second of this thread."""
    done, started = 0, time.thread_time()
    while (elapsed := time.thread_time() - started) < seconds:
        for text in inputs:
            func(text)
        done += len(inputs)
    return done / elapsed


def presidio_find(model: str) -> Callable[[str], list[Span]]:
    from presidio_analyzer import AnalyzerEngine  # optional, for comparison only
    from presidio_analyzer.nlp_engine import NlpEngineProvider

    config = {"nlp_engine_name": "spacy", "models": [{"lang_code": "en", "model_name": model}]}
    engine = AnalyzerEngine(nlp_engine=NlpEngineProvider(nlp_configuration=config).create_engine())
    kinds = {"EMAIL_ADDRESS": "EMAIL", "PHONE_NUMBER": "PHONE", "CREDIT_CARD": "CREDIT_CARD",
             "IBAN_CODE": "IBAN", "US_SSN": "SSN", "PERSON": PERSON}  # fmt: skip

    def find(text: str) -> list[Span]:
        spans = []
        for result in engine.analyze(text, language="en", score_threshold=0.4):
            kind = kinds.get(result.entity_type)
            if result.entity_type == "IP_ADDRESS":
                kind = IPV6 if ":" in text[result.start : result.end] else IPV4
            if kind is not None:
                spans.append(Span(result.start, result.end, kind, 50))
        return spans

    return find


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=2.0)
    parser.add_argument("--spacy-model", default=None)
    parser.add_argument("--presidio", action="store_true")
    parser.add_argument("--split", default=None, help="score only one split of each set")
    parser.add_argument("--no-speed", action="store_true", help="skip the throughput runs")
    args = parser.parse_args()

    kinds = list(BUILTIN_KINDS)
    anonymizer = Anonymizer(KEY)
    sets = {name: [c for c in load_cases(path) if args.split in (None, c.split)]
            for name, path in {**SETS, **HOLDOUT}.items()}  # fmt: skip
    reports = {}
    for name, cases in sets.items():
        report = reports[name] = score(anonymizer.find, cases)
        path = {**SETS, **HOLDOUT}[name]
        print(f"\n== set {name} ({path.name}): split={args.split or 'all'} "
              f"cases={len(cases)} values={report.total().values} "
              f"look_alikes={report.look_alikes}")  # fmt: skip
        print_table("default recognizers", report, kinds)
    print()
    passed = [verdict(name, report) for name, report in reports.items() if name in SETS]
    all_cases = [case for cases in sets.values() for case in cases]

    rates: dict[str, float] = {"typical": float("nan")}
    if not args.no_speed:
        no_names = Anonymizer(KEY, default_recognizers(names=False))
        for label, inputs in (("typical", prose_inputs(all_cases)),
                              ("dense", dense_inputs(all_cases))):  # fmt: skip
            mean_len = sum(map(len, inputs)) / len(inputs)
            baseline = rate(str.lower, inputs, args.seconds)
            ours = rates[label] = rate(lambda t: anonymizer.anonymize(t, "b"), inputs, args.seconds)
            ours_no_names = rate(lambda t: no_names.anonymize(t, "b"), inputs, args.seconds)
            print(f"\n{label} inputs: {len(inputs)}, mean {mean_len:.0f} chars, 1 thread")
            print(f"  baseline str.lower        {baseline:>12,.0f} strings/s")
            print(f"  anonymize (all kinds)     {ours:>12,.0f} strings/s  "
                  f"({baseline / ours:,.0f}x slower than baseline)")  # fmt: skip
            print(f"  anonymize (no names)      {ours_no_names:>12,.0f} strings/s")
    inputs = dense_inputs(all_cases)

    if args.spacy_model:
        from dspy_flywheel.privacy import SpacyPersonRecognizer

        registry = default_recognizers(names=False)
        registry.register(SpacyPersonRecognizer(args.spacy_model))
        spacy_anonymizer = Anonymizer(KEY, registry)
        for name, cases in sets.items():
            report = score(spacy_anonymizer.find, cases)
            print_table(f"{name}: spaCy {args.spacy_model} for names", report, kinds)
        spacy_rate = rate(lambda t: spacy_anonymizer.anonymize(t, "b"), inputs, args.seconds)
        print(f"  anonymize with spaCy names {spacy_rate:>11,.0f} strings/s")
    if args.presidio:
        find = presidio_find(args.spacy_model or "en_core_web_sm")
        for name, cases in sets.items():
            print_table(f"{name}: presidio-analyzer (no SECRET support)", score(find, cases), kinds)
        print(f"  presidio analyze           {rate(find, inputs, args.seconds):>11,.0f} strings/s")

    for name, report in reports.items():
        total = report.total()
        print(
            f"pii_quality set={name} recall={total.recall:.4f} "
            f"precision={total.precision:.4f} look_alikes_kept={report.kept_rate:.3f}"
        )
    print(f"pii_quality acceptance={'PASS' if all(passed) else 'FAIL'} "
          f"strings_per_s={rates['typical']:.0f}")  # fmt: skip


if __name__ == "__main__":
    main()
