"""Hourly and daily rollups with coverage, on plain PostgreSQL and TimescaleDB alike.

A device-hour is recomputed as a whole from ``readings_effective`` whenever a reading lands in
it (the writer, same transaction), an annotation covering it changes, or ``luftnett rollup
refresh`` runs. Days are recomputed from their hours, for both day conventions. Because every
path runs the same statements over whole hours and sums are ``numeric`` (exact, independent of
row order), incremental maintenance and a from-scratch refresh give identical rows.

- hour: ``[hour_start, hour_start + 1 h)`` in UTC, by the window end ``ts`` of each reading;
- day: ``[day_start, day_end)`` of a :class:`DayConvention`: ``utc+01`` days (compliance, as the
  Norwegian reference network stamps its data) or ``Europe/Oslo`` days (display; 23 or 25 hours
  at the DST changes);
- coverage: ``n_expected`` = period length / ``window_s`` (the shortest window seen in it),
  ``n_valid`` = readings without an invalidating flag, ``coverage_pct`` = 100 n_valid/n_expected;
  an hour is valid with >= 75 % coverage (45 min), a day with >= 18 valid hours.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, date, datetime, time, timedelta, timezone, tzinfo
from enum import StrEnum
from typing import Any
from zoneinfo import ZoneInfo

import psycopg
from psycopg import sql

from luftnett.collector.arrays import text_array, time_array
from luftnett.contracts.units import INVALIDATING_FLAGS
from luftnett.db.schema import ROLLUP_DAILY_COLUMNS, ROLLUP_HOURLY_COLUMNS, VALUE_COLUMNS
from luftnett.errors import ConfigError

__all__ = [
    "DayConvention",
    "RefreshResult",
    "day_bounds",
    "day_of",
    "hour_of",
    "lock_devices",
    "mark_dirty",
    "refresh",
    "refresh_days",
    "refresh_dirty",
    "refresh_hours",
]

HOUR = timedelta(hours=1)


class DayConvention(StrEnum):
    """Which calendar day a statistic belongs to (../shared/LIMITS.md)."""

    COMPLIANCE = "utc+01"  # fixed UTC+01:00, as NILU stamps reference data, summer included
    DISPLAY = "Europe/Oslo"  # civil days in Norway: 23 h in March, 25 h in October

    @property
    def tz(self) -> tzinfo:
        if self is DayConvention.COMPLIANCE:
            return timezone(timedelta(hours=1), "UTC+01:00")
        return ZoneInfo("Europe/Oslo")

    @property
    def describe(self) -> str:
        if self is DayConvention.COMPLIANCE:
            return "utc+01: days 00-24 UTC+01:00 (compliance statistics, as reference stations)"
        return "Europe/Oslo: civil days in Norway, 23/25 h at DST changes (display)"

    @classmethod
    def parse(cls, text: str) -> DayConvention:
        key = text.strip().lower().replace(":00", "")
        for conv in cls:
            if key == conv.value.lower():
                return conv
        if key in {"compliance", "utc+1"}:
            return cls.COMPLIANCE
        if key in {"display", "oslo", "local"}:
            return cls.DISPLAY
        raise ConfigError(f"day convention {text!r} unknown; use 'utc+01' or 'Europe/Oslo'")


def hour_of(ts: datetime) -> datetime:
    """The UTC hour holding ``ts``."""
    return ts.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


def day_of(ts: datetime, conv: DayConvention) -> date:
    return ts.astimezone(conv.tz).date()


def day_bounds(day: date, conv: DayConvention) -> tuple[datetime, datetime]:
    """``[start, end)`` of a day in UTC (Oslo: 23 h on 2026-03-29, 25 h on 2026-10-25)."""
    start = datetime.combine(day, time(0), tzinfo=conv.tz).astimezone(UTC)
    end = datetime.combine(day + timedelta(days=1), time(0), tzinfo=conv.tz).astimezone(UTC)
    return start, end


def _stat_exprs(src: str, valid: sql.Composable) -> list[sql.Composable]:
    out: list[sql.Composable] = []
    for q in VALUE_COLUMNS:
        col = sql.SQL(".").join([sql.Identifier(src), sql.Identifier(q)])
        f = sql.SQL(" FILTER (WHERE {})").format(valid)
        out += [
            sql.SQL("count({})").format(col) + f,
            sql.SQL("sum({}::numeric)").format(col) + f,
            sql.SQL("min({})").format(col) + f,
            sql.SQL("max({})").format(col) + f,
        ]
    return out


def _daily_stat_exprs() -> list[sql.Composable]:
    out: list[sql.Composable] = []
    for q in VALUE_COLUMNS:
        for stat, fn in (("n", "sum"), ("sum", "sum"), ("min", "min"), ("max", "max")):
            out.append(sql.SQL(fn + "(h.{})").format(sql.Identifier(f"{q}_{stat}")))
    return out


def _upsert_tail(cols: tuple[str, ...], key: tuple[str, ...]) -> sql.Composable:
    return sql.SQL("ON CONFLICT ({}) DO UPDATE SET {}, refreshed_at = now()").format(
        sql.SQL(", ").join(sql.Identifier(c) for c in key),
        sql.SQL(", ").join(
            sql.SQL("{0} = EXCLUDED.{0}").format(sql.Identifier(c)) for c in cols if c not in key
        ),
    )


_VALID_R = sql.SQL("r.effective_flags & %(mask)s = 0")

_HOURLY = sql.SQL(
    """
    WITH k AS (
        SELECT DISTINCT device_id, hour_start
        FROM unnest(%(devices)s::text[], %(hours)s::timestamptz[]) AS k(device_id, hour_start)
    )
    INSERT INTO rollup_hourly ({cols})
    SELECT k.device_id, k.hour_start, min(r.window_s),
           greatest(1, round(3600 / min(r.window_s)::numeric))::int,
           count(*), count(*) FILTER (WHERE {valid}), {stats}
    FROM k CROSS JOIN LATERAL (
        -- OFFSET 0 keeps the view from being flattened into each FILTER: effective_flags
        -- (an EXISTS over annotations) is then computed once per reading
        SELECT * FROM readings_effective e
        WHERE e.device_id = k.device_id AND e.ts >= k.hour_start
          AND e.ts < k.hour_start + interval '1 hour'
        OFFSET 0
    ) r
    GROUP BY k.device_id, k.hour_start
    {upsert}
    """
).format(
    cols=sql.SQL(", ").join(sql.Identifier(c) for c in ROLLUP_HOURLY_COLUMNS),
    valid=_VALID_R,
    stats=sql.SQL(", ").join(_stat_exprs("r", _VALID_R)),
    upsert=_upsert_tail(ROLLUP_HOURLY_COLUMNS, ("device_id", "hour_start")),
)

_HOURLY_DELETE_EMPTY = """
DELETE FROM rollup_hourly h
USING unnest(%(devices)s::text[], %(hours)s::timestamptz[]) AS k(device_id, hour_start)
WHERE h.device_id = k.device_id AND h.hour_start = k.hour_start
  AND NOT EXISTS (SELECT 1 FROM readings r WHERE r.device_id = k.device_id
                  AND r.ts >= k.hour_start AND r.ts < k.hour_start + interval '1 hour')
"""

_DAILY = sql.SQL(
    """
    WITH k AS (
        SELECT DISTINCT * FROM unnest(%(devices)s::text[], %(convs)s::text[], %(days)s::date[],
                                      %(starts)s::timestamptz[], %(ends)s::timestamptz[])
            AS k(device_id, day_convention, day, day_start, day_end)
    )
    INSERT INTO rollup_daily ({cols})
    SELECT k.device_id, k.day_convention, k.day, k.day_start, k.day_end,
           round(extract(epoch FROM k.day_end - k.day_start) / 3600)::smallint,
           count(*), count(*) FILTER (WHERE h.n_valid * 4 >= h.n_expected * 3),
           min(h.window_s),
           greatest(1, round(extract(epoch FROM k.day_end - k.day_start)
                             / min(h.window_s)::numeric))::int,
           sum(h.n_stored), sum(h.n_valid), {stats}
    FROM k JOIN rollup_hourly h
      ON h.device_id = k.device_id AND h.hour_start >= k.day_start AND h.hour_start < k.day_end
    GROUP BY k.device_id, k.day_convention, k.day, k.day_start, k.day_end
    {upsert}
    """
).format(
    cols=sql.SQL(", ").join(sql.Identifier(c) for c in ROLLUP_DAILY_COLUMNS),
    stats=sql.SQL(", ").join(_daily_stat_exprs()),
    upsert=_upsert_tail(ROLLUP_DAILY_COLUMNS, ("device_id", "day_convention", "day")),
)

_DAILY_DELETE_EMPTY = """
DELETE FROM rollup_daily d
USING unnest(%(devices)s::text[], %(convs)s::text[], %(days)s::date[]) AS k(device_id, c, day)
WHERE d.device_id = k.device_id AND d.day_convention = k.c AND d.day = k.day
  AND NOT EXISTS (SELECT 1 FROM rollup_hourly h WHERE h.device_id = d.device_id
                  AND h.hour_start >= d.day_start AND h.hour_start < d.day_end)
"""

_LOCK_DEVICES = (
    "SELECT device_id FROM devices WHERE device_id = ANY(%s) ORDER BY device_id FOR NO KEY UPDATE"
)


def lock_devices(conn: psycopg.Connection[Any], devices: Iterable[str]) -> None:
    """Serialise rollup maintenance per device (in the caller's transaction).

    The writer's device upsert takes the same row lock, so a batch, an annotation change and
    a refresh of one device never recompute its hours from different snapshots.
    """
    conn.execute(_LOCK_DEVICES, (sorted(set(devices)),))


def refresh_hours(conn: psycopg.Connection[Any], keys: Iterable[tuple[str, datetime]]) -> int:
    """Recompute these (device, UTC hour) rollups, then their days; return hours written."""
    pairs = sorted({(d, hour_of(h)) for d, h in keys})
    if not pairs:
        return 0
    params = {
        "devices": [p[0] for p in pairs],
        "hours": [p[1] for p in pairs],
        "mask": int(INVALIDATING_FLAGS),
    }
    with conn.cursor() as cur:
        cur.execute(_HOURLY, params)
        n = cur.rowcount
        cur.execute(_HOURLY_DELETE_EMPTY, params)
    refresh_days(conn, {(d, day_of(h, c), c) for d, h in pairs for c in DayConvention})
    return n


def refresh_days(
    conn: psycopg.Connection[Any], keys: Iterable[tuple[str, date, DayConvention]]
) -> int:
    """Recompute these (device, day, convention) rollups from the hourly table."""
    triples = sorted(set(keys))
    if not triples:
        return 0
    bounds = [day_bounds(day, conv) for _d, day, conv in triples]
    params = {
        "devices": [t[0] for t in triples],
        "convs": [t[2].value for t in triples],
        "days": [t[1] for t in triples],
        "starts": [b[0] for b in bounds],
        "ends": [b[1] for b in bounds],
    }
    with conn.cursor() as cur:
        cur.execute(_DAILY, params)
        n = cur.rowcount
        cur.execute(_DAILY_DELETE_EMPTY, params)
    return n


class RefreshResult(tuple[int, int, int]):
    """(devices, hours, days) recomputed."""

    @property
    def devices(self) -> int:
        return self[0]

    @property
    def hours(self) -> int:
        return self[1]

    @property
    def days(self) -> int:
        return self[2]


_REFRESH_DEVICES = "SELECT device_id FROM devices ORDER BY device_id"
_DELETE_HOURS = """
DELETE FROM rollup_hourly WHERE device_id = %(device)s
  AND (%(start)s::timestamptz IS NULL OR hour_start >= %(start)s)
  AND (%(end)s::timestamptz IS NULL OR hour_start < %(end)s)
"""
_DELETE_DAYS = """
DELETE FROM rollup_daily WHERE device_id = %(device)s
  AND (%(start)s::timestamptz IS NULL OR day_end > %(start)s)
  AND (%(end)s::timestamptz IS NULL OR day_start < %(end)s)
"""
_HOURS_WITH_DATA = """
SELECT DISTINCT date_trunc('hour', ts, 'UTC') FROM readings WHERE device_id = %(device)s
  AND (%(start)s::timestamptz IS NULL OR ts >= %(start)s)
  AND (%(end)s::timestamptz IS NULL OR ts < %(end)s)
"""
_HOURS_NEAR = """
SELECT hour_start FROM rollup_hourly WHERE device_id = %(device)s
  AND (%(start)s::timestamptz IS NULL OR hour_start >= %(start)s::timestamptz - interval '2 days')
  AND (%(end)s::timestamptz IS NULL OR hour_start < %(end)s::timestamptz + interval '2 days')
"""


def refresh(
    conn: psycopg.Connection[Any],
    device: str | None = None,
    start: datetime | None = None,
    end: datetime | None = None,
) -> RefreshResult:
    """Recompute rollups from scratch for one device or all, in ``[start, end)`` (UTC hours;
    None = unbounded), one transaction per device. The scheduled-job twin of the writer's
    incremental maintenance: both leave the same rows."""
    if start is not None:
        start = hour_of(start)
    if end is not None and hour_of(end) != end:
        end = hour_of(end) + HOUR
    if device is None:
        devices = [str(r[0]) for r in conn.execute(_REFRESH_DEVICES).fetchall()]
        conn.commit()
    else:
        devices = [device]
    n_hours = n_days = 0
    for dev in devices:
        p = {"device": dev, "start": start, "end": end}
        with conn.transaction():
            lock_devices(conn, [dev])
            conn.execute(_DELETE_HOURS, p)
            conn.execute(_DELETE_DAYS, p)
            hours = [r[0] for r in conn.execute(_HOURS_WITH_DATA, p).fetchall()]
            if hours:
                with conn.cursor() as cur:
                    cur.execute(
                        _HOURLY,
                        {
                            "devices": [dev] * len(hours),
                            "hours": hours,
                            "mask": int(INVALIDATING_FLAGS),
                        },
                    )
                    n_hours += cur.rowcount
            near = [r[0] for r in conn.execute(_HOURS_NEAR, p).fetchall()]
            days = set()
            for h in near:
                for c in DayConvention:
                    d = day_of(h, c)
                    lo, hi = day_bounds(d, c)
                    if (start is None or hi > start) and (end is None or lo < end):
                        days.add((dev, d, c))
            n_days += refresh_days(conn, days)
    return RefreshResult((len(devices), n_hours, n_days))


_MARK_DIRTY = """
INSERT INTO rollup_dirty (device_id, hour_start)
SELECT * FROM unnest(%s::text[], %s::timestamptz[])
ON CONFLICT DO NOTHING
"""

_TAKE_DIRTY = """
DELETE FROM rollup_dirty WHERE (device_id, hour_start) IN (
    SELECT device_id, hour_start FROM rollup_dirty
    ORDER BY marked_at LIMIT %s FOR UPDATE SKIP LOCKED)
RETURNING device_id, hour_start
"""


def mark_dirty(conn: psycopg.Connection[Any], keys: Iterable[tuple[str, datetime]]) -> None:
    """Queue these (device, UTC hour) rollups for :func:`refresh_dirty` (same transaction)."""
    pairs = sorted(set(keys))
    if pairs:
        dev, hour = zip(*pairs, strict=True)
        conn.execute(_MARK_DIRTY, (text_array(dev), time_array(hour)))


def refresh_dirty(conn: psycopg.Connection[Any], limit: int = 5000) -> int:
    """Refresh up to ``limit`` queued device-hours in one transaction; return how many.

    Rows taken by another collector's refresh are skipped, not waited for.
    """
    with conn.transaction():
        keys = conn.execute(_TAKE_DIRTY, (limit,)).fetchall()
        if keys:
            refresh_hours(conn, [(d, h) for d, h in keys])
    return len(keys)
