"""The period a map describes: one clock hour, one calendar day, or one calendar year.

Day and year boundaries are in UTC+01:00, as Norwegian compliance statistics and NILU's
reference data use them (summer time is ignored on purpose; see docs/maps.md). An hour is
``[start, start + 1 h)``; a reading belongs to the hour of its window end ``ts``, as the
rollups count it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from typing import Literal, get_args

from luftnett.mapping.errors import MappingError

__all__ = ["PERIOD_KINDS", "UTC_PLUS_1", "Period", "PeriodKind", "parse_period"]

PeriodKind = Literal["hourly", "daily", "annual"]
PERIOD_KINDS: tuple[PeriodKind, ...] = get_args(PeriodKind)
UTC_PLUS_1 = timezone(timedelta(hours=1))
_AT = re.compile(r"^(\d{4})(?:-(\d{2})-(\d{2})(?:[T ](\d{2})(?::(\d{2}))?(?::\d{2})?)?)?(.*)$")


@dataclass(frozen=True, slots=True)
class Period:
    """``[start, end)``, both aware datetimes."""

    kind: PeriodKind
    start: datetime
    end: datetime

    @property
    def hours(self) -> int:
        return int((self.end - self.start).total_seconds() // 3600)

    @property
    def label(self) -> str:
        local = self.start.astimezone(UTC_PLUS_1)
        if self.kind == "annual":
            return f"{local:%Y}"
        if self.kind == "daily":
            return f"{local:%Y-%m-%d}"
        return f"{local:%Y-%m-%dT%H:00}+01:00"

    def as_dict(self) -> dict[str, str]:
        return {
            "kind": self.kind,
            "label": self.label,
            "start": self.start.isoformat(),
            "end": self.end.isoformat(),
            "day_convention": "utc+01",
        }


def parse_period(kind: str, at: str) -> Period:
    """The ``kind`` period containing ``at``: ``2026``, ``2026-03-01``, ``2026-03-01T08``
    (or ``T08:00``), optionally with an offset (``Z``, ``+02:00``); without one, UTC+01:00."""
    if kind not in PERIOD_KINDS:
        raise MappingError(f"unknown period {kind!r}; use one of {', '.join(PERIOD_KINDS)}")
    m = _AT.match(at.strip())
    if not m:
        raise MappingError(f"--at must look like 2026, 2026-03-01 or 2026-03-01T08 (got {at!r})")
    year, month, day, hour, minute, rest = m.groups()
    tz: timezone = UTC_PLUS_1
    if rest:
        if rest == "Z":
            tz = UTC
        else:
            off = re.fullmatch(r"([+-])(\d{2}):?(\d{2})", rest)
            if not off:
                raise MappingError(f"--at has an unreadable time zone offset {rest!r} ({at!r})")
            sign = 1 if off.group(1) == "+" else -1
            tz = timezone(sign * timedelta(hours=int(off.group(2)), minutes=int(off.group(3))))
    if kind == "daily" and month is None:
        raise MappingError(f"--period daily needs a date, e.g. 2026-03-01 (got {at!r})")
    if kind == "hourly" and hour is None:
        raise MappingError(f"--period hourly needs an hour, e.g. 2026-03-01T08 (got {at!r})")
    try:
        t = datetime(
            int(year),
            int(month or 1),
            int(day or 1),
            int(hour or 0),
            int(minute or 0),
            tzinfo=tz,
        ).astimezone(UTC_PLUS_1)
    except ValueError as exc:
        raise MappingError(f"--at {at!r} is not a valid date or time ({exc})") from None
    if kind == "hourly":
        start = t.replace(minute=0, second=0, microsecond=0)
        end = start + timedelta(hours=1)
    elif kind == "daily":
        start = t.replace(hour=0, minute=0, second=0, microsecond=0)
        end = start + timedelta(days=1)
    else:
        start = t.replace(month=1, day=1, hour=0, minute=0, second=0, microsecond=0)
        end = start.replace(year=start.year + 1)
    return Period(kind, start.astimezone(UTC), end.astimezone(UTC))
