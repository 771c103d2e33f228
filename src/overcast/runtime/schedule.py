"""Schedule expressions in EventBridge's syntax, the one users of serverless know.

``rate(5 minutes)`` / ``rate(1 hour)`` / ``rate(2 days)`` and
``cron(minutes hours day-of-month month day-of-week year)``, in UTC, where exactly
one of day-of-month and day-of-week is ``?`` and day-of-week counts 1-7 from Sunday
(or SUN-SAT). Each cloud's deploy translates the same expression for its scheduler.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

from ..errors import ConfigError
from ..resources.records import record

__all__ = ["Schedule", "parse_schedule"]

_RATE = re.compile(r"^rate\(\s*(\d+)\s+(minute|minutes|hour|hours|day|days)\s*\)$")
_CRON = re.compile(r"^cron\((.*)\)$")
_UNITS = {"minute": 60, "hour": 3600, "day": 86400}
_DOW_NAMES = ["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"]


@record(frozen=True)
class Schedule:
    """A parsed schedule: either a fixed ``interval`` or a cron expression."""

    expression: str
    interval: timedelta | None = None
    cron: str | None = None  # standard 5-field cron (day-of-week 0-6 from Sunday), for croniter
    years: str | None = None

    def next_after(self, moment: datetime) -> datetime:
        """The first firing strictly after ``moment`` (UTC)."""
        if self.interval is not None:
            return moment + self.interval
        from croniter import croniter  # only schedules with cron pay for it

        assert self.cron is not None
        base = moment.astimezone(UTC)
        if self.years not in (None, "*"):
            first = min(int(part.split("-")[0]) for part in self.years.split(","))
            if base.year < first:  # jump ahead instead of stepping through the years between
                base = datetime(first, 1, 1, tzinfo=UTC) - timedelta(seconds=1)
        itr = croniter(self.cron, base)
        for _ in range(10_000):
            nxt: datetime = itr.get_next(datetime)
            if self.years in (None, "*") or year_matches(self.years, nxt.year):
                return nxt
        raise ConfigError(f"schedule {self.expression!r} never fires again")


def year_matches(spec: str, year: int) -> bool:
    """Whether ``year`` is in a cron year field (``2026``, ``2026-2028``, lists of either);
    the one rule for every scheduler (the dev server's, Azure's timer, EventBridge's)."""
    for part in spec.split(","):
        if "-" in part:
            lo, hi = part.split("-", 1)
            if int(lo) <= year <= int(hi):
                return True
        elif part.isdigit() and int(part) == year:
            return True
    return False


def parse_schedule(expression: str) -> Schedule:
    """Parse ``expression``, raising :class:`ConfigError` that names it if it does not parse."""
    if not isinstance(expression, str):
        raise ConfigError(f"schedule must be a string like 'rate(5 minutes)', got {expression!r}")
    text = expression.strip()
    match = _RATE.match(text)
    if match:
        value, unit = int(match.group(1)), match.group(2).rstrip("s")
        if value < 1:
            raise ConfigError(f"schedule {expression!r}: the rate must be at least 1")
        if (value == 1) != (match.group(2) == unit):
            raise ConfigError(f"schedule {expression!r}: write 'rate(1 {unit})' or 'rate(N {unit}s)'")
        return Schedule(expression, interval=timedelta(seconds=value * _UNITS[unit]))
    match = _CRON.match(text)
    if not match:
        raise ConfigError(
            f"schedule {expression!r} does not parse: use 'rate(N minutes|hours|days)' "
            "or 'cron(min hour day-of-month month day-of-week year)'"
        )
    fields = match.group(1).split()
    if len(fields) != 6:
        raise ConfigError(f"schedule {expression!r}: cron() takes 6 fields, got {len(fields)}")
    minute, hour, dom, month, dow, year = fields
    if (dom == "?") == (dow == "?"):
        raise ConfigError(f"schedule {expression!r}: exactly one of day-of-month and day-of-week must be '?'")
    if not re.fullmatch(r"\*|\d{4}(-\d{4})?(,\d{4}(-\d{4})?)*", year):
        raise ConfigError(f"schedule {expression!r}: year field {year!r} does not parse")
    cron = " ".join([minute, hour, "*" if dom == "?" else dom, month, "*" if dow == "?" else _dow(dow, expression)])
    from croniter import croniter

    if not croniter.is_valid(cron):
        raise ConfigError(f"schedule {expression!r} does not parse as a cron expression")
    return Schedule(expression, cron=cron, years=year)


def _dow(field: str, expression: str) -> str:
    """EventBridge counts 1-7 from Sunday; cron counts 0-6. Names pass through."""
    if "#" in field or "L" in field:
        raise ConfigError(f"schedule {expression!r}: day-of-week '{field}' (L and # forms) is not supported")

    def shift(match: re.Match[str]) -> str:
        number = int(match.group(0))
        if not 1 <= number <= 7:
            raise ConfigError(f"schedule {expression!r}: day-of-week {number} is outside 1-7")
        return str(number - 1)

    # Steps (``*/2``) keep their step; only day numbers shift.
    parts = []
    for part in field.split(","):
        base, slash, step = part.partition("/")
        base = re.sub(r"\d+", shift, base) if base not in ("*",) else base
        parts.append(base + slash + step)
    return ",".join(parts)
