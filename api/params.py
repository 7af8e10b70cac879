"""Query models that validate: a bad parameter is a 422 saying what to send instead."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta
from typing import Any, ClassVar, Literal, Self

from fastapi import HTTPException
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, field_validator, model_validator

from luftnett.db.schema import VALUE_COLUMNS

__all__ = [
    "DEVICE_PATH",
    "SITE_PATH",
    "AggregateQuery",
    "AreaAggregateQuery",
    "AreaQuery",
    "ExceedanceQuery",
    "ReadingsQuery",
    "TimeRange",
    "check_quantities",
    "date_in_range",
]

DEVICE_PATH = r"^[a-z0-9-]{3,40}$"
SITE_PATH = r"^[a-z0-9-]{2,60}$"
_MIN = datetime(1970, 1, 1, tzinfo=UTC)
_MAX = datetime(2100, 1, 1, tzinfo=UTC)
_MIN_DATE, _MAX_DATE = date(1970, 1, 1), date(2099, 12, 31)
MAX_PERIODS = 20_000


def _in_range(name: str, v: datetime | None) -> datetime | None:
    if v is not None and not _MIN <= v < _MAX:
        raise ValueError(f"{name} must lie between 1970 and 2100 (got {v.isoformat()})")
    return v


def date_in_range(name: str, v: date) -> date:
    """``v`` if it lies in 1970-01-01..2099-12-31 (what the API's series and ledger take)."""
    if not _MIN_DATE <= v <= _MAX_DATE:
        raise ValueError(f"{name} must lie between 1970-01-01 and 2099-12-31 (got {v})")
    return v


def check_quantities(qs: list[str]) -> list[str]:
    bad = [q for q in qs if q not in VALUE_COLUMNS]
    if bad:
        raise ValueError(f"unknown quantity {bad[0]!r}; use one of: {', '.join(VALUE_COLUMNS)}")
    return list(dict.fromkeys(qs))


#: an ISO time whose "+hh:mm" offset arrived as " hh:mm": a "+" in a query string is a space
_SPACE_OFFSET = re.compile(r"T\d\d:\d\d(:\d\d(\.\d+)?)? \d\d(:?\d\d)?$")


def _unencoded_plus(v: Any) -> Any:
    if isinstance(v, str) and _SPACE_OFFSET.search(v):
        fixed = v.replace(" ", "%2B")
        raise ValueError(
            f"{v!r} looks like a time whose '+' offset was sent unencoded (a '+' in a URL "
            f"means a space): write {fixed}, or give the time in UTC with Z"
        )
    return v


class TimeRange(BaseModel):
    """[start, end) with both optional: end defaults to now, start to end - ``default_span``."""

    default_span: ClassVar[timedelta] = timedelta(hours=24)

    start: AwareDatetime | None = None
    end: AwareDatetime | None = None

    _start = field_validator("start")(lambda v: _in_range("start", v))
    _end = field_validator("end")(lambda v: _in_range("end", v))
    _plus = field_validator("start", "end", mode="before")(lambda v: _unencoded_plus(v))

    @model_validator(mode="after")
    def _order(self) -> Self:
        if self.start is not None and self.end is not None and self.start >= self.end:
            raise ValueError(
                f"start ({self.start.isoformat()}) must be before end ({self.end.isoformat()})"
            )
        return self

    def bounds(self) -> tuple[datetime, datetime]:
        """[start, end) with the defaults filled in."""
        end = self.end or datetime.now(UTC)
        start = self.start or end - self.default_span
        if start >= end:
            raise HTTPException(
                422, f"start ({start.isoformat()}) must be before end ({end.isoformat()})"
            )
        return start, end


class ReadingsQuery(TimeRange):
    """Time range [start, end) of raw readings; default the last 24 hours."""

    model_config = ConfigDict(extra="forbid")

    start: AwareDatetime | None = Field(
        default=None,
        description="ISO 8601 with offset, e.g. 2026-03-29T00:00:00Z; default end - 24 h",
    )
    end: AwareDatetime | None = Field(
        default=None, description="ISO 8601 with offset, exclusive; default now"
    )
    limit: int = Field(default=10_000, ge=1, le=100_000, description="rows at most")
    order: Literal["asc", "desc"] = Field(default="asc", description="by time")


_ADJECTIVE = {"hour": "hourly", "day": "daily"}


class AggregateQuery(BaseModel):
    """Which series: quantities, periods from/to (inclusive), day convention, data source."""

    model_config = ConfigDict(extra="forbid")

    quantity: list[str] = Field(
        default_factory=lambda: ["pm25_ugm3", "pm10_ugm3"],
        description="repeatable: " + ", ".join(VALUE_COLUMNS),
    )
    start: date | None = Field(
        default=None,
        description="first period (a date, YYYY-MM-DD, in the day convention's calendar; "
        "for hourly series the UTC hour at 00:00 of that date); default: 6 days before end "
        "(hourly: 7 days), 29 days before end (daily: 30 days), 1 January of end's year "
        "(monthly), 1 January 4 years before it (annual: 5 years)",
    )
    end: date | None = Field(
        default=None, description="last period included (YYYY-MM-DD); default today"
    )
    day_convention: Literal["utc+01", "Europe/Oslo"] = Field(
        default="Europe/Oslo",
        description="calendar of days, months and years: utc+01 (compliance, as reference "
        "stations) or Europe/Oslo (display, 23/25-hour days at DST changes)",
    )
    source: Literal["raw", "calibrated"] = Field(
        default="raw", description="raw readings, or calibrated values where they exist"
    )
    min_coverage_pct: float = Field(
        default=90.0, ge=0, le=100, description="monthly/annual: % of hours valid for 'valid'"
    )

    _q = field_validator("quantity")(lambda v: check_quantities(v))

    @field_validator("start", "end")
    @classmethod
    def _dates(cls, v: date | None) -> date | None:
        return None if v is None else date_in_range("dates", v)

    @model_validator(mode="after")
    def _order(self) -> AggregateQuery:
        if self.start is not None and self.end is not None and self.start > self.end:
            raise ValueError(f"start ({self.start}) must not be after end ({self.end})")
        return self

    def span(self, period: str, today: date) -> tuple[date, date]:
        end = self.end or today
        if self.start is not None and self.start > end:  # end left out: today
            raise ValueError(
                f"start ({self.start}) must not be after end ({end}, today when not given)"
            )
        default = {
            "hour": end - timedelta(days=6),
            "day": end - timedelta(days=29),
            "month": date(end.year, 1, 1),
            "year": date(end.year - 4, 1, 1),
        }[period]
        start = self.start or min(default, end)
        n = (end - start).days + 1
        n_periods = n * 24 * len(self.quantity) if period == "hour" else n * len(self.quantity)
        if period in ("hour", "day") and n_periods > MAX_PERIODS:
            raise ValueError(
                f"{n_periods} {_ADJECTIVE[period]} values asked for; at most {MAX_PERIODS} per "
                "request: shorten start..end, ask for fewer quantities, or use /api/v1/downloads"
            )
        return start, end


class AreaQuery(BaseModel):
    """An area: sites by id, by type, or inside a bounding box (all given filters apply)."""

    model_config = ConfigDict(extra="forbid")

    site: list[str] = Field(default_factory=list, description="repeatable site id")
    site_type: list[str] = Field(
        default_factory=list, description="repeatable: traffic, background, school, ..."
    )
    bbox: str | None = Field(
        default=None,
        pattern=r"^-?\d+(\.\d+)?,-?\d+(\.\d+)?,-?\d+(\.\d+)?,-?\d+(\.\d+)?$",
        description="min_lon,min_lat,max_lon,max_lat (WGS84)",
    )

    @field_validator("site")
    @classmethod
    def _sites(cls, v: list[str]) -> list[str]:
        for s in v:
            if not re.match(SITE_PATH, s):
                raise ValueError(f"site id {s[:60]!r} is not valid: use a-z, 0-9 and '-'")
        return v

    @model_validator(mode="after")
    def _bbox(self) -> AreaQuery:
        self.bbox_values()
        return self

    def bbox_values(self) -> tuple[float, float, float, float] | None:
        if self.bbox is None:
            return None
        a, b, c, d = (float(x) for x in self.bbox.split(","))
        if not (-180 <= a <= c <= 180 and -90 <= b <= d <= 90):
            raise ValueError(
                "bbox must be min_lon,min_lat,max_lon,max_lat with min <= max, "
                "lon in [-180, 180] and lat in [-90, 90]"
            )
        return a, b, c, d


class AreaAggregateQuery(AggregateQuery, AreaQuery):
    """An area and its series, in one query model."""

    model_config = ConfigDict(extra="forbid")


class ExceedanceQuery(BaseModel):
    """Which profile and calendar year."""

    model_config = ConfigDict(extra="forbid")

    profile: str = Field(
        default="eu-2008-50",
        pattern=r"^[a-z0-9-]{1,60}$",
        description="profile id; GET /api/v1/profiles lists them",
    )
    year: int | None = Field(default=None, ge=1970, le=2099, description="default this year")
    source: Literal["raw", "calibrated"] = Field(default="raw")
