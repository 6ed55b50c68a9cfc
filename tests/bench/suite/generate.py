"""Writes the suite's three generated tasks (payment_notes, reservations, policy_qa).

Each template is a differently phrased, hand-written sentence; values, formats and the rules
the labels follow (gross over net, balance after a partial payment, net-N-days arithmetic, 12 h
to 24 h times, party sizes in words) vary per row. Fixed seed: the files are reproducible and,
once written, frozen (``python tests/bench/suite/generate.py`` rewrites them identically).
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable, Sequence
from datetime import date, timedelta
from pathlib import Path

HERE = Path(__file__).parent
MONTHS = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
]
NUMBER_WORDS = [
    "zero",
    "one",
    "two",
    "three",
    "four",
    "five",
    "six",
    "seven",
    "eight",
    "nine",
    "ten",
    "eleven",
    "twelve",
]


def eu_amount(cents: int) -> str:  # 1.234,50
    euros, rest = divmod(cents, 100)
    return f"{euros:,}".replace(",", ".") + f",{rest:02d}"


def us_amount(cents: int) -> str:  # 1,234.50
    euros, rest = divmod(cents, 100)
    return f"{euros:,}.{rest:02d}"


def styled(rng: random.Random, styles: Sequence[Callable[[], str | None]]) -> str:
    """One of ``styles`` at random; the last one where the chosen one does not fit (None)."""
    text = styles[rng.randrange(len(styles))]()
    return styles[-1]() if text is None else text


def amount_text(rng: random.Random, cents: int) -> str:
    return styled(
        rng,
        [
            lambda: f"€{eu_amount(cents)}",
            lambda: f"EUR {us_amount(cents)}",
            lambda: f"{eu_amount(cents)} EUR",
            lambda: f"{us_amount(cents)} euros",
            lambda: f"{cents // 100},- €" if cents % 100 == 0 else None,
            lambda: f"€ {us_amount(cents)}",
        ],
    )


def date_text(rng: random.Random, day: date) -> str:
    month = MONTHS[day.month - 1]
    return styled(
        rng,
        [
            lambda: f"{day.day:02d}/{day.month:02d}/{day.year}",
            lambda: f"{day.day} {month} {day.year}",
            lambda: f"{month} {day.day}, {day.year}",
            lambda: f"{day.day:02d}.{day.month:02d}.{day.year}",
            lambda: f"{day.day} {month[:3]} {day.year}",
            day.isoformat,
        ],
    )


def random_day(rng: random.Random) -> date:
    return date(2025, 1, 1) + timedelta(days=rng.randrange(700))


SUPPLIERS = [
    "Bakker Bouw",
    "Nordlicht GmbH",
    "Café Rosa",
    "Studio Verde",
    "Atlas Cleaning",
    "Meier & Sohn",
    "Hotel Lumen",
    "Printwerk",
    "Kappa Logistics",
    "Dr. Olsen Dental",
    "Blue Fern Florists",
    "Vega IT Services",
    "Oak & Iron Joinery",
    "Sunrise Catering",
]


def payment_note(rng: random.Random) -> dict[str, str]:
    supplier = rng.choice(SUPPLIERS)
    total = rng.randrange(1500, 950000)
    due = random_day(rng)
    shape = rng.randrange(10)
    a, d = amount_text(rng, total), date_text(rng, due)
    if shape == 0:
        text = f"Invoice from {supplier}: please pay {a} by {d}."
    elif shape == 1:
        net = round(total / 1.21)
        text = (
            f"{supplier} invoice, net {amount_text(rng, net)}, VAT 21%, total {a}. "
            f"Payment due on {d}."
        )
    elif shape == 2:
        issued = due - timedelta(days=(days := rng.choice([14, 30, 45, 60])))
        text = (
            f"Invoice dated {date_text(rng, issued)} from {supplier} for {a}, "
            f"terms: net {days} days."
        )
    elif shape == 3:
        paid = rng.randrange(500, total - 500)
        full = amount_text(rng, total + paid)
        text = (
            f"Reminder from {supplier}: of the {full} invoiced you already paid "
            f"{amount_text(rng, paid)}; the remaining {a} is due {d}."
        )
    elif shape == 4:
        text = f"{d} is the deadline for the {a} owed to {supplier} for last month's work."
    elif shape == 5:
        early = due - timedelta(days=rng.choice([5, 7, 10]))
        text = (
            f"{supplier}: total {a}, due {d}. Pay before {date_text(rng, early)} and get "
            f"2% off (optional)."
        )
    elif shape == 6:
        text = (
            f"hi, it's {supplier} again - still waiting on {a}, could you transfer it no "
            f"later than {d}? thanks"
        )
    elif shape == 7:
        fee = rng.choice([500, 1000, 1500, 2500])
        text = (
            f"Late notice ({supplier}): original amount {amount_text(rng, total - fee)} plus "
            f"a late fee of {amount_text(rng, fee)}; total now due {d}."
        )
    elif shape == 8:
        issued = due - timedelta(days=(days := rng.choice([7, 10, 21, 30])))
        text = (
            f"{supplier} billed {a} on {date_text(rng, issued)}. Payment within {days} "
            "days of the invoice date, please."
        )
    else:
        reference = rng.randrange(10000, 99999)
        text = f"Amount due: {a}. Due date: {d}. Payee: {supplier}. Reference INV-{reference}."
    return {"note": text, "due_date": due.isoformat(), "amount_eur": f"{total / 100:.2f}"}


NAMES = ["Sanne", "Tom", "Priya", "Luca", "Fatima", "Jonas", "Mei", "Oskar", "Ines", "Kofi"]


def time_text(rng: random.Random, hour: int, minute: int) -> str:
    h12 = hour - 12 if hour > 12 else hour
    evening = hour >= 17

    def spoken() -> str | None:
        if minute == 30:
            return (
                f"half past {NUMBER_WORDS[h12]} in the evening"
                if evening
                else f"half past {h12} pm"
            )
        if minute == 0:
            return f"{NUMBER_WORDS[h12]} o'clock in the evening" if evening else f"{h12} o'clock pm"
        return None

    return styled(
        rng,
        [
            lambda: f"{hour:02d}:{minute:02d}",
            lambda: f"{h12}{'' if minute == 0 else f':{minute:02d}'}pm",
            lambda: f"{h12}.{minute:02d} in the evening" if evening else f"{h12}.{minute:02d} pm",
            spoken,
            lambda: f"{hour}h{minute:02d}",
        ],
    )


def party_text(rng: random.Random, size: int) -> str:
    return styled(
        rng,
        [
            lambda: f"a table for {size}",
            lambda: f"{NUMBER_WORDS[size]} people",
            lambda: f"me and {NUMBER_WORDS[size - 1]} friends" if size >= 3 else None,
            lambda: f"two adults and {NUMBER_WORDS[size - 2]} kids" if size >= 4 else None,
            lambda: f"{size} guests",
        ],
    )


def reservation(rng: random.Random) -> dict[str, str]:
    day = random_day(rng)
    hour, minute = rng.choice([12, 13, 17, 18, 19, 20, 21]), rng.choice([0, 15, 30, 45])
    if hour in (12, 13):
        minute = rng.choice([0, 30])
    size = rng.randrange(1, 11)
    d, t, p = date_text(rng, day), time_text(rng, hour, minute), party_text(rng, size)
    name = rng.choice(NAMES)
    shape = rng.randrange(7)
    if shape == 0:
        text = f"Hi, could I book {p} on {d} at {t}? Name: {name}."
    elif shape == 1:
        text = f"{name} here. We'd like {p}, {d}, around {t}. Thanks!"
    elif shape == 2:
        moved = day + timedelta(days=1)
        text = (
            f"Reservation for {name}: originally {date_text(rng, day)}, but please move it to "
            f"{date_text(rng, moved)} at {t}, {p}."
        )
        day = moved
    elif shape == 3:
        text = f"Do you have room for {p} at {t} on {d}? One of us is vegetarian."
    elif shape == 4:
        text = f"Booking request - date {d} - time {t} - {p} - under {name}"
    elif shape == 5:
        extra = rng.randrange(1, 3)
        text = (
            f"Please reserve {p} for {d} at {t}; actually add {NUMBER_WORDS[extra]} more, "
            "my parents are joining."
        )
        size += extra
    else:
        text = f"{d}, {t}: {p}, birthday dinner, {name}, can we sit outside?"
    return {
        "message": text,
        "date": day.isoformat(),
        "time": f"{hour:02d}:{minute:02d}",
        "party_size": str(size),
    }


PLANS = ["Basic", "Plus", "Family", "Student", "Business", "Senior", "Travel", "Pro"]


def policy_qa(rng: random.Random) -> dict[str, str]:
    plan = rng.choice(PLANS) + rng.choice(["", " 2", " Max", " Lite"])
    price = rng.randrange(5, 60)
    data = rng.choice([5, 10, 20, 50, 100, 200])
    notice = rng.choice([14, 30, 60, 90])
    lines = rng.randrange(1, 6)
    country = rng.choice(["France", "Spain", "Italy", "Germany", "Portugal", "Greece"])
    fee = rng.choice([25, 35, 49, 60, 75])
    facts = [
        f"The {plan} plan costs {price} euros per month.",
        f"It includes {data} GB of mobile data.",
        f"Cancelling requires {notice} days' notice.",
        f"Up to {lines} extra SIM cards can be added.",
        f"Roaming is free in {country} only.",
        f"Installing the router at home costs a one-off {fee} euros.",
    ]
    rng.shuffle(facts)
    qa = rng.choice(
        [
            (f"How much does the {plan} plan cost each month?", f"{price} euros"),
            ("What does a month of this plan cost?", f"{price} euros"),
            ("How much mobile data is included?", f"{data} GB"),
            ("What's the data allowance?", f"{data} GB"),
            ("How many days' notice do I need to give to cancel?", f"{notice} days"),
            ("If I want to quit, how far ahead must I tell them?", f"{notice} days"),
            ("How many extra SIM cards can I add?", str(lines)),
            ("Where is roaming free?", country),
            ("In which country can I roam at no cost?", country),
            ("What is the one-time charge for installing the router?", f"{fee} euros"),
            ("How much will the home router installation set me back?", f"{fee} euros"),
        ]
    )
    return {"context": " ".join(facts), "question": qa[0], "answer": qa[1]}


def write(name: str, make: object, count: int, seed: int) -> None:
    rng = random.Random(seed)
    rows = [make(rng) for _ in range(count)]  # type: ignore[operator]
    with (HERE / f"{name}.jsonl").open("w", encoding="utf-8") as out:
        for row in rows:
            out.write(json.dumps(row, ensure_ascii=False) + "\n")


if __name__ == "__main__":
    write("payment_notes", payment_note, 160, 11)
    write("reservations", reservation, 160, 12)
    write("policy_qa", policy_qa, 160, 13)
