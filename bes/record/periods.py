"""Date-range filters on the summary tables, whose rows count per day (``YYYY-MM-DD``) and
again per month (``YYYY-MM``): a range reads the months it covers whole and the days at its
two ends, so that ten years cost ~120 month rows instead of 3,650 day rows."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import and_, false, func, or_

FIRST_DAY = dt.date(1970, 1, 1)
LAST_DAY = dt.date(9999, 12, 31)


def parse_day(value: str | dt.date | None, name: str = "date") -> dt.date | None:
    """A date from ``YYYY-MM-DD`` (or a date); None stays None."""
    if value is None or isinstance(value, dt.date):
        return value
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        raise ValueError(f"{name} must be a date YYYY-MM-DD, got {value!r}") from None


def _month_end(day: dt.date) -> dt.date:
    if day.month == 12:
        return day.replace(day=31)
    following = (day.replace(day=28) + dt.timedelta(days=4)).replace(day=1)
    return following - dt.timedelta(days=1)


def covering(
    since: dt.date | None, until: dt.date | None
) -> tuple[tuple[str, str] | None, list[tuple[str, str]]]:
    """For the inclusive range [since, until]: (first and last whole month ``YYYY-MM``, or
    None) and the day ranges (``YYYY-MM-DD`` pairs) that the whole months leave out."""
    low = since or FIRST_DAY
    high = until or LAST_DAY
    if low > high:
        return None, []
    first_whole = low if low.day == 1 else _month_end(low) + dt.timedelta(days=1)
    last_whole_end = (
        high if high == _month_end(high) else high.replace(day=1) - dt.timedelta(days=1)
    )
    if first_whole > last_whole_end:
        return None, [(low.isoformat(), high.isoformat())]
    days = []
    if low < first_whole:
        days.append((low.isoformat(), (first_whole - dt.timedelta(days=1)).isoformat()))
    if last_whole_end < high:
        days.append(((last_whole_end + dt.timedelta(days=1)).isoformat(), high.isoformat()))
    return (first_whole.isoformat()[:7], last_whole_end.isoformat()[:7]), days


def period_clause(column: Any, since: dt.date | None, until: dt.date | None) -> Any:
    """SQL condition on a ``period`` column selecting each run of [since, until] once."""
    months, days = covering(since, until)
    clauses = []
    if months is not None:
        clauses.append(and_(func.length(column) == 7, column >= months[0], column <= months[1]))
    for first, last in days:
        clauses.append(and_(func.length(column) == 10, column >= first, column <= last))
    return or_(*clauses) if clauses else false()
