"""Exceedances of a limit-value profile in one calendar year, with the validity rules applied.

Per entry of the profile (``api/data``): hourly entries count valid hourly means above the
value (strictly, as the directives), daily entries valid daily means (``utc+01`` days, as the
reference network), annual entries compare the mean of the valid hourly means. The verdict:

- ``exceeded``: more exceedances than allowed (conclusive even for a partial year), or a valid
  annual mean above the value;
- ``insufficient_data``: below the profile's data capture for the year (``year_min_coverage_pct``
  of hours, or of days for daily entries), and not already exceeded;
- ``not_exceeded``: enough data and within the allowance.

Microsensor data are indicative: the verdict is never a statement of legal compliance.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone
from typing import Any

from psycopg import AsyncConnection

from luftnett.api.profiles import INDICATIVE_NOTE_NO, LimitEntry, Profile, ProfileSet
from luftnett.api.queries import Aggregate, Period, Scope, aggregate

__all__ = ["exceedances"]

_UTC1 = timezone(timedelta(hours=1))
_UNIT: dict[str, Period] = {"1h": "hour", "24h": "day", "1y": "year"}


def _episodes(values: list[float | None], threshold: float, run: int) -> int:
    """Runs of at least ``run`` consecutive values above ``threshold`` (None breaks a run)."""
    count = length = 0
    for v in values:
        if v is not None and v > threshold:
            length += 1
            if length == run:
                count += 1
        else:
            length = 0
    return count


def _judge(
    entry: LimitEntry, agg: Aggregate, q: str, factor: float, min_cov: float, year: int
) -> dict[str, Any]:
    rows = [r for r in agg.rows if r["quantity"] == q]
    valid = [r for r in rows if r["valid"] and r["mean"] is not None]
    values = [r["mean"] * factor for r in valid]
    out: dict[str, Any] = entry.as_dict()
    out["quantity"] = q
    in_force = entry.effective_date is None or entry.effective_date <= f"{year}-12-31"
    out["in_force"] = in_force
    if entry.averaging_period == "1y":
        row = rows[0] if rows else None
        cov = row["coverage"]["pct_complete"] if row else None
        mean = None if row is None or row["mean"] is None else round(row["mean"] * factor, 2)
        out.update({"annual_mean_ugm3": mean, "count": None, "coverage_pct": cov})
        if row is None or not row["valid"] or mean is None:
            status = "insufficient_data"
        else:
            status = "exceeded" if mean > entry.value_ugm3 else "not_exceeded"
    else:
        total = len(rows)
        cov = round(100.0 * len(valid) / total, 1) if total else None
        if entry.consecutive_periods:
            series = [
                r["mean"] * factor if r["valid"] and r["mean"] is not None else None for r in rows
            ]
            count = _episodes(series, entry.value_ugm3, entry.consecutive_periods)
            allowed = 0
        else:
            count = sum(1 for v in values if v > entry.value_ugm3)
            allowed = entry.allowed_exceedances_per_year or 0
        out.update(
            {
                "count": count,
                "counted": "episodes" if entry.consecutive_periods else "periods",
                "max_ugm3": round(max(values), 2) if values else None,
                "coverage_pct": cov,
            }
        )
        if count > allowed:
            status = "exceeded"
        elif cov is None or cov < min_cov:
            status = "insufficient_data"
        else:
            status = "not_exceeded"
    out["min_coverage_pct"] = min_cov
    out["status"] = status
    return out


async def exceedances(
    conn: AsyncConnection[Any],
    scope: Scope,
    profile: Profile,
    profiles: ProfileSet,
    year: int,
    *,
    calibrated: bool = False,
) -> dict[str, Any]:
    """The verdict of every entry of ``profile`` for calendar ``year`` (UTC+01:00 days)."""
    v = profile.validity
    quantities = sorted({profiles.quantity_of[e.pollutant] for e in profile.entries})
    aggs: dict[str, Aggregate] = {}
    for period_code in sorted({e.averaging_period for e in profile.entries}):
        unit = _UNIT[period_code]
        if unit == "hour":
            first: datetime | date = datetime(year, 1, 1, tzinfo=_UTC1)
            last: datetime | date = datetime(year, 12, 31, 23, tzinfo=_UTC1)
        else:
            first, last = date(year, 1, 1), date(year, 12, 31)
        aggs[period_code] = await aggregate(
            conn,
            scope,
            quantities,
            unit,
            "utc+01",
            first,
            last,
            calibrated=calibrated,
            hour_min_coverage_pct=v.hour_min_coverage_pct,
            day_min_valid_hours=v.day_min_valid_hours,
            min_coverage_pct=v.year_min_coverage_pct,
        )
    results = []
    for e in profile.entries:
        q = profiles.quantity_of[e.pollutant]
        factor = profiles.factor_to_ugm3.get(q, 1.0)
        results.append(
            _judge(e, aggs[e.averaging_period], q, factor, v.year_min_coverage_pct, year)
        )
    return {
        "profile": profile.summary(),
        "year": year,
        "day_convention": "utc+01",
        "indicative": True,
        "label": profiles.indicative_label,
        "note": profiles.indicative_note,
        "note_no": INDICATIVE_NOTE_NO,
        "computed_at": datetime.now(UTC).isoformat(),
        "entries": results,
    }
