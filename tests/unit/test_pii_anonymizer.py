"""Anonymizer: consistent placeholders, key and scope dependence, nested values, threads."""

from __future__ import annotations

import json
import re
import threading
import time
from dataclasses import dataclass
from typing import Any

import pytest

from dspy_flywheel.privacy import (
    Anonymizer,
    InMemoryPlaceholderStore,
    RecognizerError,
    RecognizerRegistry,
    SpacyPersonRecognizer,
    Span,
    UnsupportedValueError,
    default_recognizers,
    resolve_overlaps,
    value_digest,
)

KEY = b"k" * 32


def test_same_value_same_placeholder_within_scope() -> None:
    anonymizer = Anonymizer(KEY)
    first = anonymizer.anonymize("mail ana@example.com, then bob@example.com", "w1")
    second = anonymizer.anonymize("again ANA@example.com and ana@example.com", "w1")
    assert first.text == "mail <EMAIL_1>, then <EMAIL_2>"
    assert second.text == "again <EMAIL_1> and <EMAIL_1>"
    assert first.counts_by_kind == {"EMAIL": 2}


def test_formatting_variants_share_a_placeholder() -> None:
    anonymizer = Anonymizer(KEY)
    result = anonymizer.anonymize(
        "call (415) 555-2671 or +1 415 555 2671; card 4111 1111 1111 1111 = 4111111111111111",
        "w1",
    )
    assert result.text == "call <PHONE_1> or <PHONE_1>; card <CREDIT_CARD_1> = <CREDIT_CARD_1>"


def test_numbering_is_per_kind_and_per_scope() -> None:
    anonymizer = Anonymizer(KEY)
    text = "Dear Maria Lopez, ping 10.0.0.1 and 10.0.0.2"
    assert anonymizer.anonymize(text, "w1").text == "Dear <PERSON_1>, ping <IPV4_1> and <IPV4_2>"
    other = anonymizer.anonymize("ping 10.0.0.2 then 10.0.0.1", "w2")
    assert other.text == "ping <IPV4_1> then <IPV4_2>"  # w2 numbers on its own


def test_mapping_holds_digests_not_values_and_depends_on_key() -> None:
    raw = ["ana@example.com", "4111111111111111", "+14155552671"]
    stores = [InMemoryPlaceholderStore(), InMemoryPlaceholderStore()]
    for key, store in zip((KEY, b"x" * 32), stores, strict=True):
        Anonymizer(key, store=store).anonymize(
            "ana@example.com 4111 1111 1111 1111 call (415) 555-2671", "w1"
        )
    snapshots = [store.snapshot("w1") for store in stores]
    dumped = json.dumps(snapshots)
    assert not any(value in dumped for value in raw)
    assert sorted(snapshots[0].values()) == sorted(snapshots[1].values())
    assert not set(snapshots[0]) & set(snapshots[1])  # other key, other digests
    assert value_digest(KEY, "w1", "EMAIL", "ana@example.com") in snapshots[0]
    assert value_digest(KEY, "w2", "EMAIL", "ana@example.com") not in snapshots[0]


def test_restored_mapping_keeps_placeholders_and_continues_numbering() -> None:
    before = Anonymizer(KEY)
    before.anonymize("a@example.com b@example.com", "w1")
    assert isinstance(before.store, InMemoryPlaceholderStore)
    saved = before.store.snapshot("w1")

    store = InMemoryPlaceholderStore()
    store.restore("w1", saved)
    after = Anonymizer(KEY, store=store)
    assert after.anonymize("b@example.com c@example.com", "w1").text == "<EMAIL_2> <EMAIL_3>"
    with pytest.raises(ValueError, match="not a placeholder"):
        store.restore("w1", {"abc": "EMAIL_1"})


def test_nested_values() -> None:
    anonymizer = Anonymizer(KEY)
    value: Any = {
        "question": "I am Maria Lopez, mail maria@example.com",
        "maria@example.com": {"score": 0.9, "ok": True, "n": 12, "none": None},
        "history": [("ssn 219-09-9999", 4111111111111111), ["10.0.0.1"]],
    }
    result = anonymizer.anonymize_value(value, "w1")
    assert result.value == {
        "question": "I am <PERSON_1>, mail <EMAIL_1>",
        "<EMAIL_1>": {"score": 0.9, "ok": True, "n": 12, "none": None},
        "history": [("ssn <SSN_1>", "<CREDIT_CARD_1>"), ["<IPV4_1>"]],
    }
    assert result.counts_by_kind == {
        "PERSON": 1, "EMAIL": 2, "SSN": 1, "CREDIT_CARD": 1, "IPV4": 1,
    }  # fmt: skip
    with pytest.raises(UnsupportedValueError):
        anonymizer.anonymize_value({"blob": b"raw bytes"}, "w1")  # type: ignore[dict-item]


def test_anonymized_text_is_stable_under_a_second_pass() -> None:
    anonymizer = Anonymizer(KEY)
    once = anonymizer.anonymize("Dr. Emily Chen, +44 20 7946 0958, key sk-" + "a1B2" * 8, "w1")
    assert anonymizer.anonymize(once.text, "w1").text == once.text
    assert anonymizer.anonymize(once.text, "w1").counts_by_kind == {}


def test_overlaps_resolved_by_priority_then_length() -> None:
    spans = [
        Span(0, 10, "PHONE", 50),
        Span(5, 25, "CREDIT_CARD", 70),
        Span(30, 40, "PERSON", 30),
        Span(30, 45, "PERSON", 30),
        Span(44, 50, "EMAIL", 80),
    ]
    kept = [(s.kind, s.start, s.end) for s in resolve_overlaps(spans)]
    assert kept == [("CREDIT_CARD", 5, 25), ("PERSON", 30, 40), ("EMAIL", 44, 50)]
    with pytest.raises(ValueError, match="kind"):
        Span(0, 1, "lower-case")
    with pytest.raises(ValueError, match="range"):
        Span(3, 3, "EMAIL")


@dataclass
class EmployeeIdRecognizer:
    name: str = "employee_id"

    def find(self, text: str) -> list[Span]:
        return [
            Span(m.start(), m.end(), "EMPLOYEE_ID", 85) for m in re.finditer(r"EMP-\d{6}", text)
        ]


def test_registry_accepts_user_recognizers() -> None:
    registry = default_recognizers()
    registry.register(EmployeeIdRecognizer())
    assert "employee_id" in registry.names()
    with pytest.raises(ValueError, match="already registered"):
        registry.register(EmployeeIdRecognizer())
    registry.register(EmployeeIdRecognizer(), replace=True)
    with pytest.raises(TypeError):
        registry.register(object())  # type: ignore[arg-type]
    result = Anonymizer(KEY, registry).anonymize("EMP-004211 mailed a@example.com", "w1")
    assert result.text == "<EMPLOYEE_ID_1> mailed <EMAIL_1>"
    registry.unregister("email")
    assert Anonymizer(KEY, registry).anonymize("a@example.com", "w1").text == "a@example.com"


def test_failing_recognizer_fails_closed() -> None:
    class Broken:
        name = "broken"

        def find(self, text: str) -> list[Span]:
            raise RuntimeError("boom")

    anonymizer = Anonymizer(KEY, RecognizerRegistry([Broken()]))
    with pytest.raises(RecognizerError, match="broken") as caught:
        anonymizer.anonymize("a@example.com", "w1")
    assert caught.value.retriable is False


def test_key_must_be_long_enough() -> None:
    with pytest.raises(ValueError, match="16 bytes"):
        Anonymizer(b"short")


def test_concurrent_use_gives_one_placeholder_per_value() -> None:
    anonymizer = Anonymizer(KEY)
    emails = [f"user{i}@example.com" for i in range(200)]
    results: list[dict[str, str]] = [{} for _ in range(8)]

    def work(index: int) -> None:
        order = emails if index % 2 else emails[::-1]  # threads race on the same values
        for email in order:
            results[index][email] = anonymizer.anonymize(email, "w1").text

    threads = [threading.Thread(target=work, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert all(result == results[0] for result in results)
    assert sorted(results[0].values()) == sorted(f"<EMAIL_{n}>" for n in range(1, 201))


def test_spacy_recognizer_maps_person_entities() -> None:
    """The adapter logic, with a stand-in for a loaded spaCy pipeline (no model needed)."""

    @dataclass
    class Entity:
        text: str
        label_: str
        start_char: int

    class Doc:
        def __init__(self, text: str) -> None:
            self.ents = [
                Entity(text[8:21], "PERSON", 8),  # "'Maria Lopez'" with quotes
                Entity("Berlin", "GPE", text.index("Berlin")),
                Entity("kafka", "PERSON", text.index("kafka")),
            ]

    recognizer = SpacyPersonRecognizer(nlp=Doc)
    text = "Call me 'Maria Lopez' in Berlin about kafka"
    spans = recognizer.find(text)
    assert [(text[s.start : s.end], s.kind, s.canonical) for s in spans] == [
        ("Maria Lopez", "PERSON", "maria lopez")
    ]
    assert recognizer.find("no capitals here") == []


@pytest.mark.parametrize(
    "text",
    [
        "1" * 20_000,
        " ".join(["1234"] * 5_000),
        "+1 " + " ".join(["12"] * 8_000),
        ":".join(["ab12"] * 5_000),
        ".".join(["1"] * 10_000),
        "a@" * 10_000,
        "api_key=" * 3_000,
        " ".join(["DE89"] * 5_000),
        " ".join(["Maria"] * 5_000),
    ],
    ids=["digits", "spaced", "plus", "hex", "dots", "ats", "keys", "iban", "names"],
)
def test_adversarial_inputs_scan_in_linear_time(text: str) -> None:
    """~20-30 kB of pathological input takes milliseconds; backtracking blow-ups take ages."""
    started = time.perf_counter()
    Anonymizer(KEY).anonymize(text, "w1")
    assert time.perf_counter() - started < 3.0
