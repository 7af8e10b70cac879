"""Aggregates in SQL: hourly, daily, monthly and annual series with coverage and statistics.

Computed from ``readings`` directly (the rollup tables can replace the ``hours`` step later
without changing the results), in one statement per request:

- **hour**: the UTC clock hour ``[h, h + 1 h)`` holding a reading's window end ``ts`` (as the
  collector's rollups). Its mean is the mean of the valid readings (no bit of
  :data:`~luftnett.api.quality.INVALID_MASK`); it is *valid* with at least
  ``hour_min_coverage_pct`` (75 %, i.e. 45 min) of the expected readings (3600 / ``window_s``).
- **day, month, year**: calendar periods of a *day convention*: ``utc+01`` (fixed UTC+01:00,
  compliance, as Norwegian reference stations) or ``Europe/Oslo`` (civil days: 23 h on
  2026-03-29, 25 h on 2026-10-25; display). The mean is the mean of the valid hourly means; a
  day is valid with >= ``day_min_valid_hours`` (18) valid hours, a month or year with >=
  ``min_coverage_pct`` of its hours valid.
- **coverage**: for hours, readings (expected = 3600 / window_s, observed = valid readings);
  for longer periods, hours (expected = hours in the period, observed = valid hours).
- **area**: each device's period value first, then the mean over the area's devices whose
  period is valid; a reading counts for a site only inside a deployment of its device there.
- **statistics** over the valid periods: n, min, quartiles, max, mean, sd and the percentiles
  limit values use (90.4th of daily PM10 means = 35 allowed days, 99.8th of hourly NO2 means =
  18 allowed hours, 99th = WHO 24-h guidelines), as ``percentile_cont`` (linear interpolation).

Quantity names (ASCII identifiers) are sorted and grouped with ``COLLATE "C"``: bytewise, the
same order, where the database's locale would call strcoll() for every comparison (a third of
a 30-day hourly series' time went to sorting one repeated name).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any, Literal
from zoneinfo import ZoneInfo

from psycopg import AsyncConnection, sql

from luftnett.api.calibration import cal_joins
from luftnett.api.quality import INVALID_MASK
from luftnett.contracts.units import ReadingFlag

__all__ = [
    "DAY_CONVENTIONS",
    "PERCENTILES",
    "Aggregate",
    "AggregateJson",
    "DayConvention",
    "Period",
    "Scope",
    "aggregate",
    "aggregate_json",
    "daily_means_cover",
    "period_bounds",
    "rollups_cover",
]

Period = Literal["hour", "day", "month", "year"]
DayConvention = Literal["utc+01", "Europe/Oslo"]

#: day convention -> IANA zone (Etc/GMT-1 is UTC+01:00 all year)
DAY_CONVENTIONS: dict[str, str] = {"utc+01": "Etc/GMT-1", "Europe/Oslo": "Europe/Oslo"}

#: percentiles reported with every series: label -> fraction
PERCENTILES: dict[str, float] = {
    "p25": 0.25,
    "p50": 0.50,
    "p75": 0.75,
    "p90_4": 0.904,
    "p98": 0.98,
    "p99": 0.99,
    "p99_8": 0.998,
}

#: the hour rule ``rollup_daily_means`` is kept with (0040); other rules use rollup_hourly
DAILY_MEANS_HOUR_COVERAGE_PCT = 75.0

_STEP = {"hour": "1 hour", "day": "1 day", "month": "1 month", "year": "1 year"}


@dataclass(frozen=True, slots=True)
class Scope:
    """One device, or an area: sites and the devices deployed at them."""

    devices: tuple[str, ...]
    sites: tuple[str, ...] | None = None  # None: device scope (no deployment filter)


@dataclass(frozen=True, slots=True)
class Aggregate:
    rows: list[dict[str, Any]]
    stats: dict[str, dict[str, Any]]
    start: datetime
    end: datetime
    computed_from: str  # "readings", "rollup_hourly" or "rollup_daily_means"


def period_bounds(
    period: Period, convention: DayConvention, first: datetime | date, last: datetime | date
) -> tuple[datetime, datetime, datetime, datetime]:
    """(first period start, last period start) as local naive times, and [start, end) in UTC.

    ``first`` and ``last`` are snapped to their periods; ``last`` is the last period included.
    For hours, both are aware datetimes and the zone is UTC.
    """
    if period == "hour":
        assert isinstance(first, datetime)
        assert isinstance(last, datetime)
        a = first.astimezone(UTC).replace(minute=0, second=0, microsecond=0, tzinfo=None)
        b = last.astimezone(UTC).replace(minute=0, second=0, microsecond=0, tzinfo=None)
        return a, b, a.replace(tzinfo=UTC), (b + timedelta(hours=1)).replace(tzinfo=UTC)
    d0 = first.date() if isinstance(first, datetime) else first
    d1 = last.date() if isinstance(last, datetime) else last
    if period == "month":
        d0, d1 = d0.replace(day=1), d1.replace(day=1)
        nxt = date(d1.year + (d1.month == 12), d1.month % 12 + 1, 1)
    elif period == "year":
        d0, d1 = date(d0.year, 1, 1), date(d1.year, 1, 1)
        nxt = date(d1.year + 1, 1, 1)
    else:
        nxt = d1 + timedelta(days=1)
    tz = ZoneInfo(DAY_CONVENTIONS[convention])
    a = datetime.combine(d0, time(0))
    b = datetime.combine(d1, time(0))
    end = datetime(nxt.year, nxt.month, nxt.day, tzinfo=tz)
    return a, b, a.replace(tzinfo=tz).astimezone(UTC), end.astimezone(UTC)


_HOURS_READINGS = """
    SELECT r.device_id, date_trunc('hour', r.ts) AS hour_start,
           greatest(1, round(3600 / min(r.window_s)::numeric))::int AS n_expected,
           count(*)::int AS n_stored,
           {per_quantity}
    FROM (SELECT r.device_id, r.ts, r.window_s, {masked}
          FROM (
              -- stored flags plus ANNOTATED_INVALID, as readings_effective (and the rollups)
              SELECT r.*, r.flags | CASE WHEN EXISTS (
                  SELECT 1 FROM annotations a WHERE a.device_id = r.device_id AND a.invalidates
                  AND a.revoked_at IS NULL AND r.ts >= a.starts_at AND r.ts < a.ends_at)
                  THEN %(annotated)s::bigint ELSE 0 END AS eflags
              FROM readings r
              WHERE r.device_id = ANY(%(devices)s) AND r.ts >= %(start)s AND r.ts < %(end)s
              OFFSET 0) AS r {joins}) AS r
    GROUP BY r.device_id, 2
"""

#: the same rows from the collector's hourly rollups (which also honour staff annotations)
_HOURS_ROLLUP = """
    SELECT h.device_id, h.hour_start, h.n_expected, h.n_stored, {per_quantity}
    FROM rollup_hourly h {joins}
    WHERE h.device_id = ANY(%(devices)s) AND h.hour_start >= %(start)s AND h.hour_start < %(end)s
"""

#: The end of every series statement: per-quantity summary statistics of the valid periods,
#: joined to the series ({per_hour}: the readings expected per hour, when known).
_STATS_TAIL = """), stats AS (
    SELECT quantity, count(mean)::int AS n, min(mean) AS min, max(mean) AS max,
           avg(mean) AS mean, stddev_samp(mean) AS sd,
           percentile_cont(%(pcts)s::float8[]) WITHIN GROUP (ORDER BY mean) AS pct
    FROM series WHERE valid AND mean IS NOT NULL GROUP BY quantity
)
SELECT s.*, {per_hour} AS per_hour,
       st.n AS st_n, st.min AS st_min, st.max AS st_max, st.mean AS st_mean, st.sd AS st_sd,
       st.pct AS st_pct
FROM series s LEFT JOIN stats st USING (quantity)
ORDER BY s.quantity, s.period_start
"""
_PER_HOUR = "(SELECT max(n_expected) FROM hours)"

_SQL = """
WITH hours AS ({hours}), hq AS (
    SELECT h.device_id, h.hour_start, h.n_expected, h.n_stored, x.quantity, x.n_valid, x.mean,
           x.vmin, x.vmax, x.n_valid * 100 >= h.n_expected * %(hour_cov)s AS valid
    FROM hours h CROSS JOIN LATERAL (VALUES {unpivot}) AS x(quantity, n_valid, mean, vmin, vmax)
), periods AS (
    SELECT p AS period_local, p AT TIME ZONE %(tz)s AS period_start,
           (p + %(step)s::interval) AT TIME ZONE %(tz)s AS period_end
    FROM generate_series(%(pfirst)s::timestamp, %(plast)s::timestamp, %(step)s::interval) AS p
), dp AS (
    SELECT quantity, device_id,
           date_trunc(%(unit)s, hour_start AT TIME ZONE %(tz)s) AS period_local,
           sum(n_expected)::int AS n_expected, sum(n_stored)::int AS n_stored,
           sum(n_valid)::int AS n_valid, count(*) FILTER (WHERE valid)::int AS hours_valid,
           {dp_stats}
    FROM hq GROUP BY 1, 2, 3
), dpv AS (
    SELECT dp.*, p.period_start, p.period_end,
           dp.hours_valid >= greatest(%(min_hours)s::int, ceil(%(min_cov)s::float8
               * extract(epoch FROM p.period_end - p.period_start) / 360000.0)) AS valid
    FROM dp JOIN periods p USING (period_local)
), series AS (
    SELECT q.quantity COLLATE "C" AS quantity, p.period_local, p.period_start, p.period_end,
           round(extract(epoch FROM p.period_end - p.period_start) / 3600)::int AS hours,
           count(d.device_id)::int AS n_devices,
           count(d.device_id) FILTER (WHERE d.valid)::int AS n_devices_valid,
           coalesce(sum(d.n_stored), 0)::int AS n_stored,
           coalesce(sum(d.n_valid), 0)::int AS n_valid,
           coalesce(sum(d.hours_valid), 0)::int AS hours_valid,
           coalesce(avg(d.mean) FILTER (WHERE d.valid), avg(d.mean)) AS mean,
           coalesce(min(d.vmin) FILTER (WHERE d.valid), min(d.vmin)) AS vmin,
           coalesce(max(d.vmax) FILTER (WHERE d.valid), max(d.vmax)) AS vmax,
           bool_or(d.valid) IS TRUE AS valid
    FROM periods p CROSS JOIN unnest(%(quantities)s::text[]) AS q(quantity)
    LEFT JOIN dpv d ON d.period_local = p.period_local AND d.quantity = q.quantity
    GROUP BY 1, 2, 3, 4
""" + _STATS_TAIL.replace("{per_hour}", _PER_HOUR)  # noqa: S608 (constants only)


#: Hourly series of ONE device from the rollups: each row is one rollup hour, so the grouping
#: of the general statement (per device and period, then over devices) is left out. Same
#: columns and values as _SQL gives for that case (tested against it and against readings).
_HOURLY_ONE = """
WITH hours AS (
    SELECT h.hour_start, h.n_expected, h.n_stored, x.quantity, x.n_valid, x.mean, x.vmin,
           x.vmax, x.n_valid * 100 >= h.n_expected * %(hour_cov)s AS valid
    FROM rollup_hourly h CROSS JOIN LATERAL (VALUES {unpivot}) AS x(quantity, n_valid, mean,
                                                                     vmin, vmax)
    WHERE h.device_id = ANY(%(devices)s) AND h.hour_start >= %(start)s
      AND h.hour_start < %(end)s
), series AS (
    SELECT q.quantity COLLATE "C" AS quantity, p AS period_local,
           p AT TIME ZONE 'UTC' AS period_start,
           (p + interval '1 hour') AT TIME ZONE 'UTC' AS period_end, 1 AS hours,
           (h.hour_start IS NOT NULL)::int AS n_devices,
           (h.valid IS TRUE)::int AS n_devices_valid,
           coalesce(h.n_stored, 0)::int AS n_stored, coalesce(h.n_valid, 0)::int AS n_valid,
           (h.valid IS TRUE)::int AS hours_valid, h.mean,
           CASE WHEN h.valid THEN h.vmin END AS vmin, CASE WHEN h.valid THEN h.vmax END AS vmax,
           h.valid IS TRUE AS valid
    FROM generate_series(%(pfirst)s::timestamp, %(plast)s::timestamp, interval '1 hour') AS p
    CROSS JOIN unnest(%(quantities)s::text[]) AS q(quantity)
    LEFT JOIN hours h ON h.hour_start = p AT TIME ZONE 'UTC' AND h.quantity = q.quantity
""" + _STATS_TAIL.replace("{per_hour}", _PER_HOUR)  # noqa: S608 (constants only)


def _hourly_one(quantities: list[str]) -> sql.Composed:
    unpivot = [
        sql.SQL(
            "({q}, h.{n}, h.{s}::float8 / nullif(h.{n}, 0), h.{lo}::float8, h.{hi}::float8)"
        ).format(
            q=sql.Literal(q),
            n=sql.Identifier(f"{q}_n"),
            s=sql.Identifier(f"{q}_sum"),
            lo=sql.Identifier(f"{q}_min"),
            hi=sql.Identifier(f"{q}_max"),
        )
        for q in quantities
    ]
    return sql.SQL(_HOURLY_ONE).format(unpivot=sql.SQL(", ").join(unpivot))


#: Daily series of ONE device from ``rollup_daily_means`` (migration 0040): per day and
#: quantity the valid hours (>= 75 % of their readings), the sum / min / max of their hourly
#: means and the valid readings, kept by the database from the same rollup_hourly rows the
#: general statement reads. ~365 rows for a year instead of ~8,760; same columns and values as
#: _SQL gives for that case (tested against it on both DST days of both conventions).
_DAILY_ONE = """
WITH days AS (
    SELECT * FROM rollup_daily_means
    WHERE device_id = ANY(%(devices)s) AND day_convention = %(convention)s
      AND day >= %(pfirst)s::date AND day <= %(plast)s::date
), dq AS (
    SELECT d.day, d.n_stored, x.quantity, x.n_valid, x.hours_valid, x.mean, x.vmin, x.vmax
    FROM days d CROSS JOIN LATERAL (VALUES {unpivot}) AS x(quantity, n_valid, hours_valid,
                                                             mean, vmin, vmax)
), series AS (
    SELECT q.quantity COLLATE "C" AS quantity, p AS period_local,
           p AT TIME ZONE %(tz)s AS period_start,
           (p + interval '1 day') AT TIME ZONE %(tz)s AS period_end,
           round(extract(epoch FROM ((p + interval '1 day') AT TIME ZONE %(tz)s)
                                    - (p AT TIME ZONE %(tz)s)) / 3600)::int AS hours,
           (d.day IS NOT NULL)::int AS n_devices,
           coalesce(d.hours_valid >= %(min_hours)s, false)::int AS n_devices_valid,
           coalesce(d.n_stored, 0)::int AS n_stored, coalesce(d.n_valid, 0)::int AS n_valid,
           coalesce(d.hours_valid, 0)::int AS hours_valid, d.mean, d.vmin, d.vmax,
           coalesce(d.hours_valid >= %(min_hours)s, false) AS valid
    FROM generate_series(%(pfirst)s::timestamp, %(plast)s::timestamp, interval '1 day') AS p
    CROSS JOIN unnest(%(quantities)s::text[]) AS q(quantity)
    LEFT JOIN dq d ON d.day = p::date AND d.quantity = q.quantity
""" + _STATS_TAIL.replace("{per_hour}", "NULL::int")  # noqa: S608 (constants only)


def _daily_one(quantities: list[str]) -> sql.Composed:
    unpivot = [
        sql.SQL("({q}, d.{n}, d.{hv}::int, d.{s} / nullif(d.{hv}, 0), d.{lo}, d.{hi})").format(
            q=sql.Literal(q),
            n=sql.Identifier(f"{q}_n"),
            hv=sql.Identifier(f"{q}_hours_valid"),
            s=sql.Identifier(f"{q}_mean_sum"),
            lo=sql.Identifier(f"{q}_mean_min"),
            hi=sql.Identifier(f"{q}_mean_max"),
        )
        for q in quantities
    ]
    return sql.SQL(_DAILY_ONE).format(unpivot=sql.SQL(", ").join(unpivot))


def _value(q: str, calibrated: bool) -> sql.Composable:
    if calibrated:
        return sql.SQL("{}.value").format(sql.Identifier(f"cal_{q}"))
    return sql.SQL("r.{}").format(sql.Identifier(q))


def _rollup_hours(quantities: list[str], area: bool) -> sql.Composed:
    per_q = [
        sql.SQL(
            "h.{n} AS {n_i}, h.{s}::float8 / nullif(h.{n}, 0) AS {m_i}, "
            "h.{lo}::float8 AS {lo_i}, h.{hi}::float8 AS {hi_i}"
        ).format(
            n=sql.Identifier(f"{q}_n"),
            s=sql.Identifier(f"{q}_sum"),
            lo=sql.Identifier(f"{q}_min"),
            hi=sql.Identifier(f"{q}_max"),
            n_i=sql.Identifier(f"n_{i}"),
            m_i=sql.Identifier(f"mean_{i}"),
            lo_i=sql.Identifier(f"min_{i}"),
            hi_i=sql.Identifier(f"max_{i}"),
        )
        for i, q in enumerate(quantities)
    ]
    joins = sql.SQL(
        " JOIN deployments dep ON dep.device_id = h.device_id AND dep.site_id = ANY(%(sites)s) "
        "AND h.hour_start >= date_trunc('hour', dep.valid_from, 'UTC') "
        "AND (dep.valid_to IS NULL OR h.hour_start < dep.valid_to)"
        if area
        else ""
    )
    return sql.SQL(_HOURS_ROLLUP).format(per_quantity=sql.SQL(", ").join(per_q), joins=joins)


def build_sql(
    quantities: list[str],
    period: Period,
    calibrated: bool,
    area: bool,
    rollups: bool = False,
    single: bool = False,
) -> sql.Composed:
    if rollups and single and period == "hour" and not area and not calibrated:
        return _hourly_one(quantities)
    per_q = []
    unpivot = []
    masked = []
    for i, q in enumerate(quantities):
        v = sql.Identifier(f"v_{i}")
        masked.append(
            sql.SQL("CASE WHEN r.eflags & %(mask)s = 0 THEN {} END AS {}").format(
                _value(q, calibrated), v
            )
        )
        per_q.append(
            sql.SQL(
                "count({v})::int AS {n}, avg({v}) AS {m}, "
                "min({v})::float8 AS {lo}, max({v})::float8 AS {hi}"
            ).format(
                v=v,
                n=sql.Identifier(f"n_{i}"),
                m=sql.Identifier(f"mean_{i}"),
                lo=sql.Identifier(f"min_{i}"),
                hi=sql.Identifier(f"max_{i}"),
            )
        )
        unpivot.append(
            sql.SQL("({q}, h.{n}, h.{m}::float8, h.{lo}, h.{hi})").format(
                q=sql.Literal(q),
                n=sql.Identifier(f"n_{i}"),
                m=sql.Identifier(f"mean_{i}"),
                lo=sql.Identifier(f"min_{i}"),
                hi=sql.Identifier(f"max_{i}"),
            )
        )
    if period == "hour":
        dp_stats = sql.SQL(
            "avg(mean) AS mean, min(vmin) FILTER (WHERE valid) AS vmin, "
            "max(vmax) FILTER (WHERE valid) AS vmax"
        )
    else:
        dp_stats = sql.SQL(
            "avg(mean) FILTER (WHERE valid) AS mean, min(mean) FILTER (WHERE valid) AS vmin, "
            "max(mean) FILTER (WHERE valid) AS vmax"
        )
    joins: list[sql.Composable] = [cal_joins(calibrated)]
    if area:
        joins.insert(
            0,
            sql.SQL(
                " JOIN deployments dep ON dep.device_id = r.device_id "
                "AND dep.site_id = ANY(%(sites)s) AND r.ts >= dep.valid_from "
                "AND (dep.valid_to IS NULL OR r.ts < dep.valid_to)"
            ),
        )
    if rollups:
        hours = _rollup_hours(quantities, area)
    else:
        hours = sql.SQL(_HOURS_READINGS).format(
            per_quantity=sql.SQL(",\n           ").join(per_q),
            masked=sql.SQL(", ").join(masked),
            joins=sql.Composed(joins),
        )
    return sql.SQL(_SQL).format(
        hours=hours,
        unpivot=sql.SQL(", ").join(unpivot),
        dp_stats=dp_stats,
    )


_HAS_ROLLUPS = "SELECT to_regclass('rollup_hourly') IS NOT NULL AS ok"
_ROLLUPS_COVER = (
    "SELECT EXISTS (SELECT 1 FROM rollup_hourly WHERE device_id = ANY(%(devices)s) "
    "AND hour_start >= %(start)s AND hour_start < %(end)s) AS ok"
)


async def rollups_cover(
    conn: AsyncConnection[Any], devices: list[str], start: datetime, end: datetime
) -> bool:
    """True when the collector's hourly rollups exist and hold rows for these devices and times.

    The collector keeps them in the transaction that stores readings, and ``luftnett rollup
    refresh`` rebuilds them; readings written around both need that refresh.
    """
    cur = await conn.execute(_HAS_ROLLUPS)
    row = await cur.fetchone()
    if row is None or not row["ok"]:
        return False
    cur = await conn.execute(_ROLLUPS_COVER, {"devices": devices, "start": start, "end": end})
    row = await cur.fetchone()
    return bool(row and row["ok"])


_HAS_DAILY_MEANS = "SELECT to_regclass('rollup_daily_means') IS NOT NULL AS ok"
_DAILY_MEANS_COVER = """
SELECT EXISTS (SELECT 1 FROM rollup_daily_means WHERE device_id = ANY(%(devices)s)
    AND day_convention = %(convention)s AND day >= %(first)s AND day <= %(last)s) AS ok
"""


async def daily_means_cover(
    conn: AsyncConnection[Any], devices: list[str], convention: str, first: date, last: date
) -> bool:
    """True when ``rollup_daily_means`` (kept with ``rollup_daily``) holds days of these devices
    in ``[first, last]`` under this day convention."""
    cur = await conn.execute(_HAS_DAILY_MEANS)
    row = await cur.fetchone()
    if row is None or not row["ok"]:
        return False
    cur = await conn.execute(
        _DAILY_MEANS_COVER,
        {"devices": devices, "convention": convention, "first": first, "last": last},
    )
    row = await cur.fetchone()
    return bool(row and row["ok"])


def _label(period: Period, local: datetime) -> str:
    if period == "hour":
        return local.replace(tzinfo=UTC).isoformat()
    if period == "day":
        return local.date().isoformat()
    if period == "month":
        return local.strftime("%Y-%m")
    return str(local.year)


def _r(x: float | None, nd: int = 3) -> float | None:
    return None if x is None else round(float(x), nd)


async def _prepare(
    conn: AsyncConnection[Any],
    scope: Scope,
    quantities: list[str],
    period: Period,
    convention: DayConvention,
    first: datetime | date,
    last: datetime | date,
    calibrated: bool,
    hour_min_coverage_pct: float,
    day_min_valid_hours: int,
    min_coverage_pct: float,
    daily_rollup: bool = True,
) -> tuple[sql.Composed, dict[str, Any], str, datetime, datetime]:
    pfirst, plast, start, end = period_bounds(period, convention, first, last)
    tz = "UTC" if period == "hour" else DAY_CONVENTIONS[convention]
    min_hours = {"hour": 1, "day": day_min_valid_hours}.get(period, 1)
    min_cov = min_coverage_pct if period in ("month", "year") else 0.0
    params = {
        "devices": list(scope.devices),
        "sites": list(scope.sites or ()),
        "start": start,
        "end": end,
        "mask": INVALID_MASK,
        "annotated": int(ReadingFlag.ANNOTATED_INVALID),
        "hour_cov": hour_min_coverage_pct,
        "tz": tz,
        "step": _STEP[period],
        "unit": period,
        "pfirst": pfirst,
        "plast": plast,
        "min_hours": min_hours,
        "min_cov": min_cov,
        "quantities": quantities,
        "pcts": list(PERCENTILES.values()),
    }
    area = scope.sites is not None
    single = len(scope.devices) == 1
    if (
        daily_rollup
        and period == "day"
        and single
        and not area
        and not calibrated
        and hour_min_coverage_pct == DAILY_MEANS_HOUR_COVERAGE_PCT
        and await daily_means_cover(
            conn, list(scope.devices), convention, pfirst.date(), plast.date()
        )
    ):
        params["convention"] = convention
        return _daily_one(quantities), params, "rollup_daily_means", start, end
    rollups = not calibrated and await rollups_cover(conn, list(scope.devices), start, end)
    query = build_sql(quantities, period, calibrated, area, rollups, single)
    return query, params, "rollup_hourly" if rollups else "readings", start, end


async def aggregate(
    conn: AsyncConnection[Any],
    scope: Scope,
    quantities: list[str],
    period: Period,
    convention: DayConvention,
    first: datetime | date,
    last: datetime | date,
    *,
    calibrated: bool = False,
    hour_min_coverage_pct: float = 75.0,
    day_min_valid_hours: int = 18,
    min_coverage_pct: float = 90.0,
    daily_rollup: bool = True,
) -> Aggregate:
    """Series of ``period`` values from ``first`` to ``last`` (both included, snapped)."""
    query, params, computed_from, start, end = await _prepare(
        conn,
        scope,
        quantities,
        period,
        convention,
        first,
        last,
        calibrated,
        hour_min_coverage_pct,
        day_min_valid_hours,
        min_coverage_pct,
        daily_rollup,
    )
    cur = await conn.execute(query, params)
    raw = await cur.fetchall()
    n_scope = max(1, len(scope.devices))
    oslo = ZoneInfo("Europe/Oslo")
    rows: list[dict[str, Any]] = []
    firsts: dict[str, dict[str, Any]] = {}
    for r in raw:
        hours = int(r["hours"])
        per_hour = r["per_hour"]
        if period == "hour":
            expected = None if per_hour is None else int(per_hour) * n_scope
            observed = int(r["n_valid"])
        else:
            expected = hours * n_scope
            observed = int(r["hours_valid"])
        row: dict[str, Any] = {
            "quantity": r["quantity"],
            "period": _label(period, r["period_local"]),
            "start": r["period_start"].astimezone(UTC).isoformat(),
            "end": r["period_end"].astimezone(UTC).isoformat(),
            "start_local": r["period_start"].astimezone(oslo).isoformat(),
            "hours": hours,
            "coverage": {
                "basis": "readings" if period == "hour" else "hours",
                "expected": expected,
                "observed": observed,
                "pct_complete": (None if not expected else round(100.0 * observed / expected, 1)),
            },
            "readings_stored": int(r["n_stored"]),
            "readings_valid": int(r["n_valid"]),
            "hours_valid": int(r["hours_valid"]),
            "n_devices": int(r["n_devices"]),
            "valid": bool(r["valid"]),
            "mean": _r(r["mean"]),
            "min": _r(r["vmin"]),
            "max": _r(r["vmax"]),
        }
        rows.append(row)
        if (q := r["quantity"]) not in firsts:  # statistics ride on each quantity's first row
            firsts[r["quantity"]] = {k: r[f"st_{k}"] for k in _STAT_KEYS} | {"quantity": q}
    stats = _stats(quantities, list(firsts.values()))
    return Aggregate(
        rows=rows,
        stats=stats,
        start=start,
        end=end,
        computed_from=computed_from,
    )


#: characters of an ISO timestamp's text ("2026-05-01T00:00:00") that label each period
_LABEL_LEN = {"hour": 19, "day": 10, "month": 7, "year": 4}

#: the rows of :func:`aggregate` as one JSON array written by PostgreSQL (same keys and
#: values), concatenated in (quantity, period) order: an explicit ORDER BY in the aggregate,
#: since a sorted subquery only "usually" orders an aggregate's input. Text is put together
#: with concat(): json_build_object costs three times as much per row. Times are written by
#: the timestamp type's own ISO output (DateStyle ISO, set by :func:`aggregate_json`), at a
#: third of the cost of to_char(). Every string is a
#: quantity name (a checked identifier), a formatted time or a constant, so nothing needs
#: escaping; numbers are rounded in float8 (cheap) and NULL becomes null. The UTC offset of
#: Europe/Oslo is +01:00 or +02:00.
_ROWS_JSON = """
WITH a AS ({inner})
SELECT '[' || coalesce(string_agg(concat(
    '{{"quantity":"', quantity,
    '","period":"', left(replace(period_local::text, ' ', 'T'), {label_len}), {label_tail},
    '","start":"', replace((period_start AT TIME ZONE 'UTC')::text, ' ', 'T'),
    '+00:00","end":"', replace((period_end AT TIME ZONE 'UTC')::text, ' ', 'T'),
    '+00:00","start_local":"',
    replace((period_start AT TIME ZONE 'Europe/Oslo')::text, ' ', 'T'),
    CASE WHEN (period_start AT TIME ZONE 'Europe/Oslo') - (period_start AT TIME ZONE 'UTC')
              = interval '2 hours' THEN '+02:00' ELSE '+01:00' END,
    '","hours":', hours,
    ',"coverage":{{"basis":"', %(basis)s::text,
    '","expected":', coalesce(expected::text, 'null'),
    ',"observed":', observed,
    ',"pct_complete":', CASE WHEN expected > 0
                             THEN (round(1000::float8 * observed / expected) / 10)::text
                             ELSE 'null' END,
    '}},"readings_stored":', n_stored,
    ',"readings_valid":', n_valid,
    ',"hours_valid":', hours_valid,
    ',"n_devices":', n_devices,
    ',"valid":', CASE WHEN valid THEN 'true' ELSE 'false' END,
    ',"mean":', coalesce((round(mean::float8 * 1000) / 1000)::text, 'null'),
    ',"min":', coalesce((round(vmin::float8 * 1000) / 1000)::text, 'null'),
    ',"max":', coalesce((round(vmax::float8 * 1000) / 1000)::text, 'null'),
    '}}'), ',' ORDER BY quantity, period_start), '') || ']' AS rows_json,
    json_agg(json_build_object('quantity', quantity, 'n', st_n, 'min', st_min,
        'max', st_max, 'mean', st_mean, 'sd', st_sd, 'pct', st_pct) ORDER BY quantity)
        FILTER (WHERE first)::text
        AS stats_json
FROM (
    SELECT a.*,
           CASE WHEN %(is_hour)s THEN a.per_hour * %(n_scope)s ELSE a.hours * %(n_scope)s END
               AS expected,
           CASE WHEN %(is_hour)s THEN a.n_valid ELSE a.hours_valid END AS observed,
           -- the first row of each quantity carries its summary statistics
           row_number() OVER (PARTITION BY a.quantity ORDER BY a.period_start) = 1 AS first
    FROM a
) e
"""


@dataclass(frozen=True, slots=True)
class AggregateJson:
    """As :class:`Aggregate`, with the rows as a JSON array (bytes) made by the database."""

    rows_json: bytes
    stats: dict[str, dict[str, Any]]
    start: datetime
    end: datetime
    computed_from: str


_STAT_KEYS = ("n", "min", "max", "mean", "sd", "pct")


def _stats(quantities: list[str], found: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    stats: dict[str, dict[str, Any]] = {}
    for r in found:
        pct = r["pct"] or [None] * len(PERCENTILES)
        stats[r["quantity"]] = {
            "n": int(r["n"] or 0),
            "min": _r(r["min"]),
            "q1": _r(pct[0]),
            "median": _r(pct[1]),
            "q3": _r(pct[2]),
            "max": _r(r["max"]),
            "mean": _r(r["mean"]),
            "sd": _r(r["sd"]),
            "percentiles": {k: _r(v) for k, v in zip(PERCENTILES, pct, strict=True)},
        }
    for q in quantities:
        stats.setdefault(
            q,
            {
                "n": 0,
                "min": None,
                "q1": None,
                "median": None,
                "q3": None,
                "max": None,
                "mean": None,
                "sd": None,
                "percentiles": dict.fromkeys(PERCENTILES),
            },
        )
    return stats


async def aggregate_json(
    conn: AsyncConnection[Any],
    scope: Scope,
    quantities: list[str],
    period: Period,
    convention: DayConvention,
    first: datetime | date,
    last: datetime | date,
    *,
    calibrated: bool = False,
    hour_min_coverage_pct: float = 75.0,
    day_min_valid_hours: int = 18,
    min_coverage_pct: float = 90.0,
    daily_rollup: bool = True,
) -> AggregateJson:
    """:func:`aggregate` for a response: PostgreSQL writes the rows' JSON, so no Python
    object is made per row (a year of days or a month of hours is one string)."""
    import json

    query, params, computed_from, start, end = await _prepare(
        conn,
        scope,
        quantities,
        period,
        convention,
        first,
        last,
        calibrated,
        hour_min_coverage_pct,
        day_min_valid_hours,
        min_coverage_pct,
        daily_rollup,
    )
    wrapped = sql.SQL(_ROWS_JSON).format(
        inner=query,
        label_len=sql.Literal(_LABEL_LEN[period]),
        label_tail=sql.Literal("+00:00" if period == "hour" else ""),
    )
    if not (conn.info.parameter_status("DateStyle") or "").startswith("ISO"):
        await conn.execute("SET DateStyle = 'ISO, YMD'")  # the times' text below
    params = {
        **params,
        "is_hour": period == "hour",
        "n_scope": max(1, len(scope.devices)),
        "basis": "readings" if period == "hour" else "hours",
    }
    cur = await conn.execute(wrapped, params)
    row = await cur.fetchone()
    assert row is not None
    found = json.loads(row["stats_json"]) if row["stats_json"] else []
    return AggregateJson(
        rows_json=row["rows_json"].encode(),
        stats=_stats(quantities, found),
        start=start,
        end=end,
        computed_from=computed_from,
    )
