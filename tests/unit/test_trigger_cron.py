from datetime import UTC, datetime

import pytest

from dspy_flywheel.trigger.cron import CronError, CronSchedule, next_fire_ms


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


@pytest.mark.parametrize(
    ("expr", "after", "expected"),
    [
        ("*/15 * * * *", "2025-03-01T10:07:30", "2025-03-01T10:15:00"),
        ("0 3 * * *", "2025-03-01T03:00:00", "2025-03-02T03:00:00"),
        ("30 9 * * mon-fri", "2025-03-01T12:00:00", "2025-03-03T09:30:00"),  # Sat -> Mon
        ("0 0 1 jan *", "2025-06-01T00:00:00", "2026-01-01T00:00:00"),
        ("0 12 29 2 *", "2025-01-01T00:00:00", "2028-02-29T12:00:00"),
        ("5,35 */2 * * *", "2025-03-01T01:40:00", "2025-03-01T02:05:00"),
        ("@hourly", "2025-03-01T01:40:00", "2025-03-01T02:00:00"),
        ("0 0 * * 7", "2025-03-01T00:00:00", "2025-03-02T00:00:00"),  # 7 = Sunday
        # both day fields restricted: either matches (1st of month OR a Monday)
        ("0 0 1 * 1", "2025-03-01T00:00:00", "2025-03-03T00:00:00"),
    ],
)
def test_next_after(expr: str, after: str, expected: str) -> None:
    assert CronSchedule.parse(expr).next_after(at(after)) == at(expected)


def test_stepped_range_and_ms_helper() -> None:
    schedule = CronSchedule.parse("10-20/5 8 * * *")
    assert (schedule.minutes, schedule.hours) == ({10, 15, 20}, {8})
    assert schedule.next_after(at("2025-03-01T08:15:00")) == at("2025-03-01T08:20:00")
    start = int(at("2025-03-01T08:10:00").timestamp() * 1000)
    assert next_fire_ms("10-20/5 8 * * *", start) == start + 5 * 60_000


@pytest.mark.parametrize(
    "expr",
    [
        "* * * *",
        "60 * * * *",
        "* 24 * * *",
        "*/0 * * * *",
        "5-1 * * * *",
        "x * * * *",
        "0 0 31 2 *",
    ],
)
def test_rejects_invalid(expr: str) -> None:
    with pytest.raises(CronError):
        CronSchedule.parse(expr).next_after(at("2025-01-01T00:00:00"))


@pytest.mark.parametrize("expr", ["0 0 30 2 *", "0 0 31 4,6,9,11 *", "0 0 30,31 feb *"])
def test_impossible_days_are_refused_when_parsed(expr: str) -> None:
    """Regression: "0 0 30 2 *" was accepted, then stopped the trigger on its next tick."""
    with pytest.raises(CronError, match="never matches"):
        CronSchedule.parse(expr)


@pytest.mark.parametrize("expr", ["0 0 29 2 *", "0 0 30 2 mon", "0 0 31 * *"])
def test_rare_but_possible_days_are_accepted(expr: str) -> None:
    schedule = CronSchedule.parse(expr)
    assert schedule.next_after(at("2025-01-01T00:00:00")) > at("2025-01-01T00:00:00")
