"""Per-recognizer behaviour: what each finds, and the look-alikes it must leave alone."""

from __future__ import annotations

import pytest

from dspy_flywheel.privacy import (
    CREDIT_CARD,
    IBAN,
    IPV4,
    IPV6,
    PERSON,
    PHONE,
    SECRET,
    SSN,
    CreditCardRecognizer,
    EmailRecognizer,
    IbanRecognizer,
    IPv4Recognizer,
    IPv6Recognizer,
    PersonNameRecognizer,
    PhoneRecognizer,
    SecretRecognizer,
    SsnRecognizer,
)
from dspy_flywheel.privacy.spans import Recognizer
from dspy_flywheel.privacy.validators import iban_valid, luhn_valid, shannon_entropy, ssn_valid


def found(recognizer: Recognizer, text: str) -> list[str]:
    return [text[s.start : s.end] for s in recognizer.find(text)]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("mail maria.garcia@example.com now", ["maria.garcia@example.com"]),
        ("x j.smith+tag@acme-corp.co.uk.", ["j.smith+tag@acme-corp.co.uk"]),
        ("'quoted@example.org'", ["quoted@example.org"]),
        ("o'neil@example.com", ["o'neil@example.com"]),
        ("user@localhost and react@18.2.0", []),
        ("ping @channel or @dspy.worker", []),
    ],
)
def test_email(text: str, expected: list[str]) -> None:
    assert found(EmailRecognizer(), text) == expected


def test_email_canonical_is_lower_case() -> None:
    (span,) = EmailRecognizer().find("A.B@Example.COM")
    assert span.canonical == "a.b@example.com"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("call (415) 555-2671", ["(415) 555-2671"]),
        ("cell 212-555-0199.", ["212-555-0199"]),
        ("Phone: 646.555.3890", ["646.555.3890"]),
        ("toll free 1-800-555-0199", ["1-800-555-0199"]),
        ("London +44 20 7946 0958", ["+44 20 7946 0958"]),
        ("dial 0049 89 1234567", ["0049 89 1234567"]),
        ("Berlin +49 (0)30 901820", ["+49 (0)30 901820"]),
        ("Tokyo +81 3-1234-5678 2024", ["+81 3-1234-5678"]),  # trailing group dropped
        ("text me: 6175550148", ["6175550148"]),
        ("Tel: 555-2671", ["555-2671"]),
        ("Phone (mobile): 07911 123456", ["07911 123456"]),  # UK national, after a cue
        ("+64 9 123 4567 is not an assigned number", ["+64 9 123 4567"]),  # '+': fail closed
    ],
)
def test_phone_found(text: str, expected: list[str]) -> None:
    assert found(PhoneRecognizer(), text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "Meeting on 2024-03-15 at 14:30:00.",
        "Deadline 03/15/2024, renewal 15.03.2025.",
        "Upgraded Python to 3.11.7 and numpy to 1.26.4.",
        "Your order #4155552671 has shipped.",
        "Order number 212-555-0199 was delayed.",
        "Ship to ZIP 94103 or 10001-1234.",
        "Timestamp 1700000000 and 6175550148 without a cue.",
        "SKU 123-456-7890 is out of stock.",
        "Rate 555-2671 without a cue",
        "ISBN 978-3-16-148410-0",
    ],
)
def test_phone_look_alikes(text: str) -> None:
    assert found(PhoneRecognizer(), text) == []


def test_phone_formats_share_canonical_e164() -> None:
    recognizer = PhoneRecognizer()
    canon = {s.canonical for t in ("(415) 555-2671", "+1 415 555 2671", "415.555.2671")
             for s in recognizer.find(f"call {t}")}  # fmt: skip
    assert canon == {"+14155552671"}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("card 4111 1111 1111 1111 exp 12/27", ["4111 1111 1111 1111"]),
        ("card 4111 1111 1111 1111 12/27", ["4111 1111 1111 1111"]),
        ("amex 3782 822463 10005", ["3782 822463 10005"]),
        ("dash 5555-5555-5555-4444", ["5555-5555-5555-4444"]),
        ("13 digits 4222222222222", ["4222222222222"]),
        ("19 digits 4111 1111 1111 1111 110", ["4111 1111 1111 1111 110"]),
        ("fails Luhn 4111 1111 1111 1112", []),
        ("mixed separators 4111-1111 1111-1111", []),
        ("unknown network 1234 5678 9012 3452", ["1234 5678 9012 3452"]),  # Luhn: any prefix
        ("tracking 1234567812345678", []),
        ("too short 4111 1111 1111", []),
    ],
)
def test_credit_card(text: str, expected: list[str]) -> None:
    assert found(CreditCardRecognizer(), text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("to DE89 3704 0044 0532 0130 00 today", ["DE89 3704 0044 0532 0130 00"]),
        ("GB82WEST12345698765432", ["GB82WEST12345698765432"]),
        ("NO93 8601 1117 947 is short", ["NO93 8601 1117 947"]),
        ("lower de89370400440532013000", ["de89370400440532013000"]),
        ("bad DE89 3704 0044 0532 0130 01", []),
        ("country XX12 3456 7890 1234", []),
        ("too long DE89370400440532013000123", []),
    ],
)
def test_iban(text: str, expected: list[str]) -> None:
    assert found(IbanRecognizer(), text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("SSN 219-09-9999", ["219-09-9999"]),
        ("ssn: 536 90 4399", ["536 90 4399"]),
        ("ssn=123456780", ["123456780"]),
        ("id 123456780 without a cue", []),
        ("area 000-12-3456", []),
        ("area 666-12-3456", []),
        ("area 900-12-3456 and 999-45-6789", []),
        ("group 123-00-4567", []),
        ("serial 123-45-0000", []),
        ("mixed 123-45 6789", []),
        ("ZIP+4 94103-1234", []),
    ],
)
def test_ssn(text: str, expected: list[str]) -> None:
    assert found(SsnRecognizer(), text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("from 192.168.1.42 blocked", ["192.168.1.42"]),
        ("to 10.0.0.1:8080.", ["10.0.0.1"]),
        ("subnet 10.10.0.0/16", ["10.10.0.0"]),
        ("bad 256.1.1.1 and 1.2.3.400", []),
        ("leading zero 01.2.3.4", []),
        ("version 4.2.1.0 and v1.2.3.4", []),
        ("see section 4.2.1.3", []),
        ("Windows build 10.0.19041.1", []),
        ("OID 1.3.6.1.4.1.311", []),
        ("Python 3.11.7", []),
    ],
)
def test_ipv4(text: str, expected: list[str]) -> None:
    assert found(IPv4Recognizer(), text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("from 2001:db8:85a3::8a2e:370:7334 x", ["2001:db8:85a3::8a2e:370:7334"]),
        ("lo ::1.", ["::1"]),
        ("zone fe80::1ff:fe23:4567:890a%eth0 up", ["fe80::1ff:fe23:4567:890a%eth0"]),
        ("url http://[2001:db8::1]:8080/", ["2001:db8::1"]),
        ("mapped ::ffff:192.0.2.128", ["::ffff:192.0.2.128"]),
        ("fe80::1: down", ["fe80::1"]),
        ("time 12:30:45", []),
        ("MAC 00:1A:2B:3C:4D:5E", []),
        ("std::vector and dead::beef", []),
        ("2024-03-15T12:30:45Z", []),
    ],
)
def test_ipv6(text: str, expected: list[str]) -> None:
    assert found(IPv6Recognizer(), text) == expected


def test_ipv6_canonical_is_compressed() -> None:
    (span,) = IPv6Recognizer().find("2001:0db8:0000:0000:0000:ff00:0042:8329")
    assert span.canonical == "2001:db8::ff00:42:8329"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "k=sk-proj-4fGh7Jk2LmN9pQr3StUv8WxY1zAb6CdE",
            ["sk-proj-4fGh7Jk2LmN9pQr3StUv8WxY1zAb6CdE"],
        ),
        ("ghp_16C7e42F292c6912E7710c838347Ae178B4a", ["ghp_16C7e42F292c6912E7710c838347Ae178B4a"]),
        ("aws AKIAIOSFODNN7EXAMPLE", ["AKIAIOSFODNN7EXAMPLE"]),
        ("Authorization: Bearer abcDEF123456ghiJKL789.", ["abcDEF123456ghiJKL789"]),
        ("api_key=3f9a2c7e1b8d4f6a0e5c9b2d7a1f4e8c", ["3f9a2c7e1b8d4f6a0e5c9b2d7a1f4e8c"]),
        (
            '{"client_secret": "Zq8R2vLm4Tx9Kp1Wn6Yb3Hc7Jd5Fg0Se"}',
            ["Zq8R2vLm4Tx9Kp1Wn6Yb3Hc7Jd5Fg0Se"],
        ),
        ("password=hunter2go", ["hunter2go"]),
        ("max_tokens=512 temperature=0.7", []),
        ("api_key=YOUR_API_KEY", []),
        ("OPENAI_API_KEY=${OPENAI_API_KEY}", []),
        ("password: ******", []),
        ("request_id=7f9c2ba4e88f827d616045507605853e", []),
        ("Bearer token expired", []),
        ("token=abcdefghij", []),  # low entropy, no digits
    ],
)
def test_secrets(text: str, expected: list[str]) -> None:
    assert found(SecretRecognizer(), text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Hi, my name is John Smith.", ["John Smith"]),
        ("Dr. Emily Chen reviewed it", ["Emily Chen"]),
        ("Mr Thompson called", ["Thompson"]),
        ("Signed,\nAisha Bello", ["Aisha Bello"]),
        ("Thanks Maria!", ["Maria"]),
        ("Meeting with Anna Maria Lopez", ["Anna Maria Lopez"]),
        ("Jean-Luc Moreau approved", ["Jean-Luc Moreau"]),
        ("John Smith's laptop", ["John Smith"]),
        ("Forwarding Brian's note", ["Brian"]),
        ("my colleague Bartholomew Quigley", ["Bartholomew Quigley"]),
        ("Amazing Grace Hopper wrote", ["Grace Hopper"]),
        ("Grace period is 30 days.", []),
        ("Will the job finish?", []),
        ("The Python upgrade broke Kafka consumers.", []),
        ("Dear Customer, thanks.", []),
        ("Regards, The Support Team", []),
        ("Maria", []),  # a lone first name without a cue
    ],
)
def test_person_names(text: str, expected: list[str]) -> None:
    assert found(PersonNameRecognizer(), text) == expected


def test_kinds_are_reported() -> None:
    text = (
        "a 4111111111111111 b DE89370400440532013000 c 219-09-9999 d 10.0.0.1 e ::1 "
        "f +44 20 7946 0958 g AKIAIOSFODNN7EXAMPLE h Dear Maria Lopez"
    )
    recognizers: list[Recognizer] = [
        CreditCardRecognizer(), IbanRecognizer(), SsnRecognizer(), IPv4Recognizer(),
        IPv6Recognizer(), PhoneRecognizer(), SecretRecognizer(), PersonNameRecognizer(),
    ]  # fmt: skip
    kinds = [span.kind for r in recognizers for span in r.find(text)]
    assert kinds == [CREDIT_CARD, IBAN, SSN, IPV4, IPV6, PHONE, SECRET, PERSON]


def test_validators() -> None:
    assert luhn_valid("4111111111111111")
    assert not luhn_valid("4111111111111112")
    assert not luhn_valid("4111-1111")
    assert iban_valid("GB82WEST12345698765432")
    assert not iban_valid("GB82WEST1234569876543")  # one char short
    assert [ssn_valid(*p) for p in (("123", "45", "6789"), ("000", "45", "6789"),
            ("666", "45", "6789"), ("912", "45", "6789"), ("123", "00", "6789"),
            ("123", "45", "0000"))] == [True, False, False, False, False, False]  # fmt: skip
    assert shannon_entropy("aaaa") == 0.0
    assert shannon_entropy("abcd") == 2.0
