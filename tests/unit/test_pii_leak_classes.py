"""One test per class of leak found by issue 15, each with values of that class that appear
in no case set (tests/data): the recognizers must hold on the class, not on the examples."""

from __future__ import annotations

import pytest

from dspy_flywheel.privacy import Anonymizer

ANON = Anonymizer(b"leak-classes-key-0123456789")


def removed(text: str, *values: str) -> str:
    out = ANON.anonymize(text, "t").text
    for value in values:
        assert value not in out, (value, out)
        # no fragment of a number survives either ("Call <PHONE_1> 00")
        digits = "".join(c for c in value if c.isdigit())
        if len(digits) >= 4:
            assert digits[-4:] not in out.replace(" ", ""), (value, out)
    return out


def kept(text: str) -> None:
    assert ANON.anonymize(text, "t").text == text


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("call me back on (289) 555-0163, any time", "(289) 555-0163"),  # unassigned area code
        ("mein Handy: 0172 98 76 54 32 1", "0172 98 76 54 32 1"),  # too many digits for DE
        ("Ring 02 99 41 87 36 after five", "02 99 41 87 36"),  # FR national, replaced whole
        ("tel. +1 646 555 0142 ext. 77", "+1 646 555 0142 ext. 77"),
        ("whatsapp +234 803 555 01", "+234 803 555 01"),  # '+' and digits: fail closed
        ("my number is 0121 496 0331", "0121 496 0331"),
        ("(08) 8123 4455 is my Adelaide number", "(08) 8123 4455"),  # the cue comes after
    ],
)
def test_phones_next_to_a_cue_or_with_plus(text: str, value: str) -> None:
    assert "<PHONE_" in removed(text, value)


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("charged on 3452 6018 1590 8308 twice", "3452 6018 1590 8308"),  # Luhn, 16 from '34'
        ("number 9012345678901238 on the receipt", "9012345678901238"),  # Luhn, any prefix
        ("my debit card 4929 1234 5678 9010 was declined", "4929 1234 5678 9010"),  # no Luhn
        ("Mastercard... the long number 5311 2233 4455 6677", "5311 2233 4455 6677"),
    ],
)
def test_cards_by_luhn_whatever_prefix_or_by_cue(text: str, value: str) -> None:
    assert "<CREDIT_CARD_" in removed(text, value)


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("I pasted my key sk-live9Hq2Lw8Rt4Ze into the form", "sk-live9Hq2Lw8Rt4Ze"),
        ("token glpat-Xy7Qw2Er9Ty5 is old", "glpat-Xy7Qw2Er9Ty5"),
        ("the access token is Q7mZ2pR9wX4kL8vN3tB6", "Q7mZ2pR9wX4kL8vN3tB6"),
        ("secret: 7d1e0c9b8a7f6e5d4c3b2a19", "7d1e0c9b8a7f6e5d4c3b2a19"),
        ("my passwort ist Alpen#Rose77", "Alpen#Rose77"),
        ("value Vq3Xt8Lm2Pz7Kw9Rb4Nc6Hd1Jf5 from the vault", "Vq3Xt8Lm2Pz7Kw9Rb4Nc6Hd1Jf5"),
    ],
)
def test_secrets_by_prefix_cue_or_entropy(text: str, value: str) -> None:
    assert "<SECRET_" in removed(text, value)


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("Hi, this is Temperance Okwuosa from accounts.", "Temperance Okwuosa"),
        ("hello Wairimu, the box shipped", "Wairimu"),
        ("please ask for Ileana Dragomir at reception", "Ileana Dragomir"),
        ("Kind regards,\nCaoimhe Ní Bhriain", "Caoimhe"),
        ("Dear Mx. Fenwick-Oduya,", "Fenwick-Oduya"),
        ("my name is zoltan varga", "zoltan varga"),
        ("Thanks,\nRaghunath", "Raghunath"),
        ("Many thanks!\nOluwadamilare", "Oluwadamilare"),
        ("Mr Ter Horst called about Herr von der Heide", "Ter Horst"),
    ],
)
def test_names_from_cues_not_only_from_the_list(text: str, value: str) -> None:
    assert "<PERSON_" in removed(text, value)


def test_two_ibans_in_one_sentence_are_both_removed() -> None:
    first, second = "BE71 0961 2345 6769", "FR76 3000 6000 0112 3456 7890 189"
    out = removed(f"send it to {first} or {second} today", first, second)
    assert out == "send it to <IBAN_1> or <IBAN_2> today"


@pytest.mark.parametrize(
    "text",
    [
        "Order #B-7781204 left the warehouse",
        "tracking 1Z0046720357981231 shows a delay",
        "version 3.14.15.92 fixes it",
        "paid EUR 12.345,67 on 2025-04-01 at 09:15",
        "commit 5f3c2a9e1d7b4c6a8e0f2d4b6a8c0e2f4a6b8c0d",
        "job 7c9e6679-7425-40de-944b-e07fc1f90ae7 failed",
        "SKU HX-2231-BLK restocked",
        "My new Dr. Martens boots and a Mr. Clean sponge",
        "Regards,\nNorthwind Billing",
    ],
)
def test_look_alikes_stay(text: str) -> None:
    kept(text)
