"""A small 5-field cron matcher (UTC): ``minute hour day-of-month month day-of-week``.

Supports ``*``, numbers, ranges ``a-b``, lists ``a,b``, steps ``*/n`` and ``a-b/n``, month and
weekday names (``jan``, ``mon``), and the aliases ``@hourly @daily @weekly @monthly @yearly``.
Day-of-week 0 and 7 are Sunday. As in Vixie cron, when both day-of-month and day-of-week are
restricted, a day matches if either does.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

_ALIASES = {
    "@hourly": "0 * * * *",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@weekly": "0 0 * * 0",
    "@monthly": "0 0 1 * *",
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
}
_MONTH_NAMES = ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")
_MONTHS = {m: i + 1 for i, m in enumerate(_MONTH_NAMES)}
_WEEKDAYS = {d: i for i, d in enumerate(("sun", "mon", "tue", "wed", "thu", "fri", "sat"))}
_SEARCH_DAYS = 366 * 5  # covers every satisfiable expression (Feb 29 included)
_LEAP_CYCLE_START = datetime(2024, 1, 1, tzinfo=UTC)  # 4 years from here hold every calendar day


class CronError(ValueError):
    """The expression is not a valid 5-field cron expression."""


def _value(token: str, names: dict[str, int], lo: int, hi: int) -> int:
    token = token.strip().lower()
    number = names.get(token) if token in names else None
    if number is None:
        if not token.isdigit():
            raise CronError(f"bad cron value {token!r}")
        number = int(token)
    if not lo <= number <= hi:
        raise CronError(f"cron value {number} outside {lo}-{hi}")
    return number


def _field(text: str, lo: int, hi: int, names: dict[str, int] | None = None) -> frozenset[int]:
    names = names or {}
    values: set[int] = set()
    for part in text.split(","):
        base, _, step_text = part.partition("/")
        step = int(step_text) if step_text.isdigit() else None
        if step_text and (step is None or step == 0):
            raise CronError(f"bad cron step in {part!r}")
        if base == "*":
            start, end = lo, hi
        elif "-" in base:
            a, b = base.split("-", 1)
            start, end = _value(a, names, lo, hi), _value(b, names, lo, hi)
            if start > end:
                raise CronError(f"empty cron range {base!r}")
        else:
            start = _value(base, names, lo, hi)
            end = hi if step else start
        values.update(range(start, end + 1, step or 1))
    return frozenset(values)


@dataclass(frozen=True)
class CronSchedule:
    minutes: frozenset[int]
    hours: frozenset[int]
    days: frozenset[int]
    months: frozenset[int]
    weekdays: frozenset[int]  # 0 = Sunday
    days_any: bool
    weekdays_any: bool

    @classmethod
    def parse(cls, expression: str) -> CronSchedule:
        """The schedule of ``expression``; CronError when it is malformed or names no day
        that exists (``0 0 30 2 *``: February 30th), so it is refused when written."""
        return _parse(expression)

    @classmethod
    def _build(cls, expression: str) -> CronSchedule:
        text = _ALIASES.get(expression.strip().lower(), expression)
        fields = text.split()
        if len(fields) != 5:
            raise CronError(f"cron needs 5 fields (minute hour day month weekday): {expression!r}")
        minute, hour, day, month, weekday = fields
        weekdays = {d % 7 for d in _field(weekday, 0, 7, _WEEKDAYS)}
        return cls(
            minutes=_field(minute, 0, 59),
            hours=_field(hour, 0, 23),
            days=_field(day, 1, 31),
            months=_field(month, 1, 12, _MONTHS),
            weekdays=frozenset(weekdays),
            days_any=day.startswith("*"),
            weekdays_any=weekday.startswith("*"),
        )

    def _some_day_matches(self) -> bool:
        day = _LEAP_CYCLE_START
        for _ in range(4 * 366):
            if self._day_matches(day):
                return True
            day += timedelta(days=1)
        return False

    def _day_matches(self, when: datetime) -> bool:
        if when.month not in self.months:
            return False
        day_ok = when.day in self.days
        weekday_ok = (when.isoweekday() % 7) in self.weekdays
        if self.days_any or self.weekdays_any:
            return day_ok and weekday_ok
        return day_ok or weekday_ok

    def next_after(self, when: datetime) -> datetime:
        """The first matching minute strictly after ``when`` (UTC)."""
        start = when.astimezone(UTC).replace(second=0, microsecond=0) + timedelta(minutes=1)
        day = start.replace(hour=0, minute=0)
        for _ in range(_SEARCH_DAYS):
            if self._day_matches(day):
                for hour in sorted(self.hours):
                    for minute in sorted(self.minutes):
                        candidate = day.replace(hour=hour, minute=minute)
                        if candidate >= start:
                            return candidate
            day += timedelta(days=1)
        raise CronError("cron expression never matches")


@functools.lru_cache(maxsize=256)
def _parse(expression: str) -> CronSchedule:
    schedule = CronSchedule._build(expression)
    if not schedule._some_day_matches():
        raise CronError(f"cron expression never matches (no such day): {expression!r}")
    return schedule


def next_fire_ms(expression: str, after_ms: int) -> int:
    """Epoch ms of the first scheduled minute strictly after ``after_ms``."""
    after = datetime.fromtimestamp(after_ms / 1000, tz=UTC)
    return int(CronSchedule.parse(expression).next_after(after).timestamp() * 1000)
