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

import numpy as np
import numpy.typing as npt
import psycopg
from psycopg import sql

from luftnett.collector.arrays import int_array, number_array, text_array, time_array
from luftnett.collector.pgnumeric import group_sums
from luftnett.contracts.units import INVALIDATING_FLAGS, ReadingFlag
from luftnett.db.schema import ROLLUP_DAILY_COLUMNS, ROLLUP_HOURLY_COLUMNS, VALUE_COLUMNS
from luftnett.errors import ConfigError

__all__ = [
    "ADD_HOURS",
    "MARK_DAYS",
    "DayConvention",
    "RefreshResult",
    "annotations_query",
    "day_bounds",
    "day_marks",
    "day_of",
    "hour_additions",
    "hour_groups",
    "hour_of",
    "lock_devices",
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


def _add_sql() -> sql.Composed:
    """Add a batch's (device, hour) partial rollups to ``rollup_hourly``: counts and exact
    sums add, minima and maxima combine, the shortest window (and so ``n_expected``) is kept
    -- what recomputing the hour from all its readings gives."""
    value_cols = [c for c in ROLLUP_HOURLY_COLUMNS if c not in _HOUR_HEAD]
    types = {"n": "int4", "sum": "numeric", "min": "real", "max": "real"}
    unnest = [sql.SQL("%s::text[]"), sql.SQL("%s::timestamptz[]"), sql.SQL("%s::real[]"),
              sql.SQL("%s::int4[]"), sql.SQL("%s::int4[]")]  # fmt: skip
    sets: list[sql.Composable] = [
        sql.SQL("window_s = least(h.window_s, EXCLUDED.window_s)"),
        sql.SQL(
            "n_expected = greatest(1, round(3600 / least(h.window_s, EXCLUDED.window_s)"
            "::numeric))::int"
        ),
        sql.SQL("n_stored = h.n_stored + EXCLUDED.n_stored"),
        sql.SQL("n_valid = h.n_valid + EXCLUDED.n_valid"),
    ]
    for c in value_cols:
        stat = c.rsplit("_", 1)[1]
        unnest.append(sql.SQL(f"%s::{types[stat]}[]"))
        i = sql.Identifier(c)
        if stat == "n":
            sets.append(sql.SQL("{0} = h.{0} + EXCLUDED.{0}").format(i))
        elif stat == "sum":  # NULL: no valid value yet
            sets.append(
                sql.SQL("{0} = coalesce(h.{0} + EXCLUDED.{0}, h.{0}, EXCLUDED.{0})").format(i)
            )
        else:
            fn = sql.SQL("least" if stat == "min" else "greatest")
            sets.append(sql.SQL("{0} = {1}(h.{0}, EXCLUDED.{0})").format(i, fn))
    sets.append(sql.SQL("refreshed_at = now()"))
    names = [sql.Identifier(f"c{j}") for j in range(len(unnest))]
    return sql.SQL(
        """
        INSERT INTO rollup_hourly AS h ({cols})
        SELECT c0, c1, c2, greatest(1, round(3600 / c2::numeric))::int, {rest}
        FROM unnest({unnest}) AS u({names})
        ON CONFLICT (device_id, hour_start) DO UPDATE SET {sets}
        """
    ).format(
        cols=sql.SQL(", ").join(sql.Identifier(c) for c in ROLLUP_HOURLY_COLUMNS),
        rest=sql.SQL(", ").join(names[3:]),
        unnest=sql.SQL(", ").join(unnest),
        names=sql.SQL(", ").join(names),
        sets=sql.SQL(", ").join(sets),
    )


_HOUR_HEAD = ("device_id", "hour_start", "window_s", "n_expected", "n_stored", "n_valid")
assert ROLLUP_HOURLY_COLUMNS[: len(_HOUR_HEAD)] == _HOUR_HEAD
#: adds a batch's partial hourly rollups: parameters from :func:`hour_additions`
ADD_HOURS = _add_sql()
_HOUR_US = 3_600_000_000
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
# invalidating staff annotations over the batch, for the readings' effective flags
_ANNOTATED = """
SELECT device_id, (extract(epoch FROM starts_at) * 1000000)::int8,
       (extract(epoch FROM ends_at) * 1000000)::int8
FROM annotations
WHERE device_id = ANY(%s::text[]) AND invalidates AND revoked_at IS NULL
  AND starts_at <= %s AND ends_at > %s
"""


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
    refresh_days(conn, days_of(pairs))
    return n


def days_of(
    keys: Iterable[tuple[str, datetime]],
) -> set[tuple[str, date, DayConvention]]:
    """The (device, day, convention) rollups over these (device, UTC hour) ones."""
    return {(d, day_of(h, c), c) for d, h in keys for c in DayConvention}


def hour_groups(
    names: list[str], dev: npt.NDArray[np.int64], ts_us: npt.NDArray[np.int64]
) -> tuple[list[tuple[str, datetime]], npt.NDArray[np.int64]]:
    """The (device, UTC hour of ts) of readings given as columns (device codes into
    ``names``): the distinct keys, sorted, and each reading's index into them."""
    hour = np.floor_divide(ts_us, _HOUR_US)  # |hour| < 2**27 for any datetime
    uniq, g = np.unique((dev.astype(np.int64) << 32) + (hour + 2**31), return_inverse=True)
    keys = [
        (names[k >> 32], _EPOCH + timedelta(hours=(k & 0xFFFFFFFF) - 2**31)) for k in uniq.tolist()
    ]
    return keys, g.astype(np.int64).ravel()


def annotations_query(
    conn: psycopg.Connection[Any], devices: list[str], ts_us: npt.NDArray[np.int64]
) -> psycopg.Cursor[Any]:
    """Execute (in a pipeline too) the query of the invalidating annotations in force over
    these devices and readings' time span (at least one reading); its rows, ``(device, start,
    end)`` in microseconds since 1970, are what :func:`hour_additions` takes."""
    lo = _EPOCH + timedelta(microseconds=int(ts_us.min()))
    hi = _EPOCH + timedelta(microseconds=int(ts_us.max()))
    return conn.execute(_ANNOTATED, (text_array(devices), hi, lo))


def hour_additions(
    groups: tuple[list[tuple[str, datetime]], npt.NDArray[np.int64]],
    names: list[str],
    dev: npt.NDArray[np.int64],
    ts_us: npt.NDArray[np.int64],
    window_s: npt.NDArray[np.float64],
    flags: npt.NDArray[np.int64],
    vals: npt.NDArray[np.float64],
    annotated: Iterable[tuple[str, int, int]],
) -> list[str] | None:
    """The parameters of :data:`ADD_HOURS` that add newly stored readings (columns; device
    codes into ``names``, values NaN where missing, ``flags`` as stored; ``groups`` their
    :func:`hour_groups`; ``annotated`` the rows of their :func:`annotations_query`) to their
    hourly rollups; None when a value is beyond ``real``'s range (stored as infinity:
    recompute those hours with :func:`refresh_hours` instead). No database work: the writer
    builds them while the server takes the batch's COPY.

    Equal to recomputing the hours from ``readings_effective``: the batch's counts, minima,
    maxima and exact ``numeric`` sums (:mod:`~luftnett.collector.pgnumeric`) are those its
    rows contribute, and readings are never changed once stored; an annotation's change
    recomputes its hours (under the same device locks). Run the statement in the caller's
    transaction, after the devices were locked (the writer's devices upsert); the days are
    left to :func:`refresh_days` (or :data:`MARK_DAYS`)."""
    keys, g = groups
    x32 = vals.astype(np.float32)  # the stored real values
    if not np.isfinite(x32[~np.isnan(x32)]).all():
        return None
    effective = flags.astype(np.int64)
    code = {d: i for i, d in enumerate(names)}
    for device, a0, a1 in annotated:
        inside = (dev == code[device]) & (ts_us >= a0) & (ts_us < a1)
        effective[inside] |= int(ReadingFlag.ANNOTATED_INVALID)
    valid = effective & int(INVALIDATING_FLAGS) == 0
    n_g = len(keys)
    window = np.full(n_g, np.inf, dtype=np.float32)
    np.minimum.at(window, g, window_s.astype(np.float32))
    params: list[str] = [
        text_array([k[0] for k in keys]),
        time_array([k[1] for k in keys]),
        number_array(window.tolist()),
        int_array(np.bincount(g, minlength=n_g).tolist()),
        int_array(np.bincount(g[valid], minlength=n_g).tolist()),
    ]
    nulls = "{" + ",".join(["NULL"] * n_g) + "}"
    for j in range(len(VALUE_COLUMNS)):
        x = x32[:, j]
        sel = valid & ~np.isnan(x)
        if not sel.any():
            params += ["{" + ",".join(["0"] * n_g) + "}", nulls, nulls, nulls]
            continue
        xs, gs = x[sel], g[sel]
        count = np.bincount(gs, minlength=n_g)
        lo_v = np.full(n_g, np.inf, dtype=np.float32)
        hi_v = np.full(n_g, -np.inf, dtype=np.float32)
        np.minimum.at(lo_v, gs, xs)
        np.maximum.at(hi_v, gs, xs)
        none = count == 0
        params += [
            int_array(count.tolist()),
            number_array(group_sums(gs, xs, n_g)),
            number_array(np.where(none, np.nan, lo_v).tolist()),
            number_array(np.where(none, np.nan, hi_v).tolist()),
        ]
    return params


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


MARK_DAYS = """
INSERT INTO rollup_dirty (device_id, hour_start, hour_current)
SELECT d, h, true FROM unnest(%s::text[], %s::timestamptz[]) AS u(d, h)
ON CONFLICT DO NOTHING
"""
# days-only marks: taken without waiting (another collector's refresh skips them)
_TAKE_DAYS = """
DELETE FROM rollup_dirty WHERE (device_id, hour_start) IN (
    SELECT device_id, hour_start FROM rollup_dirty WHERE hour_current
    ORDER BY marked_at LIMIT %s FOR UPDATE SKIP LOCKED)
RETURNING device_id, hour_start
"""
# whole hours to recompute: their devices are locked first (as a writer's batch and an
# annotation change lock them), so no batch adds to an hour while it is recomputed
_FULL_DEVICES = """
SELECT DISTINCT device_id FROM (
    SELECT device_id FROM rollup_dirty WHERE NOT hour_current ORDER BY marked_at LIMIT %s) d
"""
_TAKE_FULL = """
DELETE FROM rollup_dirty WHERE NOT hour_current AND device_id = ANY(%s)
RETURNING device_id, hour_start
"""


def day_marks(keys: Iterable[tuple[str, datetime]]) -> list[str] | None:
    """The parameters of :data:`MARK_DAYS`, which queues the days over these (device, UTC
    hour) rollups (brought up to date by :data:`ADD_HOURS`) for :func:`refresh_dirty`; None
    when there are none."""
    pairs = sorted(set(keys))
    if not pairs:
        return None
    dev, hour = zip(*pairs, strict=True)
    return [text_array(dev), time_array(hour)]


def refresh_dirty(conn: psycopg.Connection[Any], limit: int = 5000) -> int:
    """Refresh up to ``limit`` queued device-hours (hours recomputed, or only their days where
    the batches kept the hour itself); return how many. Two transactions at most.

    Days-only marks taken by another collector's refresh are skipped, not waited for."""
    with conn.transaction():
        keys = conn.execute(_TAKE_DAYS, (limit,)).fetchall()
        if keys:
            refresh_days(conn, days_of(keys))
    n = len(keys)
    with conn.transaction():
        devices = [r[0] for r in conn.execute(_FULL_DEVICES, (limit,)).fetchall()]
        if devices:
            lock_devices(conn, devices)
            full = conn.execute(_TAKE_FULL, (devices,)).fetchall()
            refresh_hours(conn, [(d, h) for d, h in full])
            n += len(full)
    return n
