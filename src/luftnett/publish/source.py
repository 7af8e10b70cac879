"""Reading the database into Arrow for the archive, and the watermarks that say what changed.

Rows come through ADBC's PostgreSQL driver (``adbc-driver-postgresql``: binary ``COPY``
straight into Arrow record batches, no Python object per value). The raw query selects only
what PostgreSQL must send (stored columns, no per-row expressions); what is constant or
derivable is added in Arrow: ``device_id``, ``site_id`` and the ``annotated_invalid`` bit
from the device's deployment and annotation segments (:func:`luftnett.api.export.segments`,
the downloads' own rule), ``ts_local``, ``valid``, and empty calibration columns for devices
never calibrated. A query is one device over one chunk (at most a month), read in order of
``ts`` along the ``(device_id, ts)`` index.

Watermarks: per chunk, what its source looked like when it was published. ``raw``: rows,
newest ``received_at`` and a content digest, the sum (mod 2**64) of a 64-bit hash of each
reading's (device, seq, stored flags): a late reading, or a QC flag set or cleared later,
changes it, and so does a restatement that clears one reading's flag and sets the same flag
on another (a plain sum of the flags would stay put). ``hourly``: rollup rows and the same kind
of digest over every published rollup number (counts, sums, minima, maxima), so a reading
that turns invalid while another turns valid in the same hour moves it too. Both add
:func:`global_state`, a digest of deployments, annotations and calibration activations and
versions. The same numbers come from the data as it is read (the hashes computed by the
server beside the rows) and from the cheap per-day aggregate a later run compares them with.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Iterator
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

import numpy as np
import psycopg
from psycopg import sql
from psycopg.rows import dict_row

from luftnett.api import calibration, export
from luftnett.api.quality import INVALID_MASK
from luftnett.contracts.units import QUANTITIES, ReadingFlag
from luftnett.db.schema import (
    ANNOTATION_COLUMNS,
    ANNOTATION_PERSONAL,
    VALUE_COLUMNS,
    rollup_value_columns,
)
from luftnett.publish.schema import HOURLY_VALID_PCT, POLLUTANTS, arrow_schema

__all__ = [
    "Source",
    "cal_days",
    "cal_marker",
    "day_watermarks",
    "global_state",
    "utc_midnight",
]

#: columns the raw query asks PostgreSQL for (received_at only feeds the watermark)
RAW_BASE: tuple[str, ...] = (
    "seq",
    "ts",
    "received_at",
    "window_s",
    "n_samples",
    "sensor_model",
    *VALUE_COLUMNS,
    "flags",
)

#: a reading's 64-bit hash in the raw digest: its device, seq and stored flags
RAW_DIGEST = sql.SQL("hashint8extended(r.flags, hashint8extended(r.seq, hashtext(r.device_id)))")

#: the rollup columns the hourly files are made of (coverage_pct derives from two of them;
#: refreshed_at is left out: a recompute to the same numbers changes nothing published)
_HOURLY_CONTENT = ("device_id", "hour_start", "window_s", "n_expected", "n_stored", "n_valid")


def _hourly_digest() -> sql.Composed:
    """A rollup row's 64-bit hash in the hourly digest: every number the files publish."""
    cols = [*_HOURLY_CONTENT, *rollup_value_columns()]
    return sql.SQL("hash_record_extended(ROW({}), 0)").format(
        sql.SQL(", ").join(sql.SQL("h.{}").format(sql.Identifier(c)) for c in cols)
    )


def digest(total: int) -> str:
    """A digest sum (PostgreSQL's numeric, or numpy's wrapped uint64) as 16 hex digits."""
    return f"{total % 2**64:016x}"


def _sum64(column: Any) -> int:
    """The sum of an int64 column of hashes, wrapped to 64 bits as :func:`digest` takes it."""
    if len(column) == 0:
        return 0
    return int(column.to_numpy().view(np.uint64).sum(dtype=np.uint64))


def utc_midnight(d: date) -> datetime:
    return datetime.combine(d, time(0), tzinfo=UTC)


_STATE = """
SELECT
  (SELECT coalesce(md5(string_agg(concat_ws('|', deployment_id, site_id, device_id,
                                            valid_from, valid_to), ',' ORDER BY deployment_id)), '')
   FROM deployments) AS deployments,
  (SELECT coalesce(md5(string_agg(concat_ws('|', annotation_id, device_id, starts_at,
                                            ends_at, invalidates, revoked_at),
                                  ',' ORDER BY annotation_id)), '')
   FROM annotations) AS annotations
"""

_CAL_STATE = """
SELECT
  (SELECT coalesce(md5(string_agg(concat_ws('|', activation_id, device_id, sensor_model,
                                            pollutant, version_id, valid_from),
                                  ',' ORDER BY activation_id)), '')
   FROM calibration_activations) AS activations,
  (SELECT coalesce(max(version_id), 0) FROM calibration_versions) AS versions
"""


#: any table that decides which calibration version is current besides the activations
#: (calibration_spans, where a migration adds it): digested row by row, whatever its columns
_SPANS_STATE = """
SELECT coalesce(md5(string_agg(s::text, ',' ORDER BY s::text)), '') FROM calibration_spans s
"""


def _exists(conn: psycopg.Connection[Any], table: str) -> bool:
    row = conn.execute("SELECT to_regclass(%s) IS NOT NULL", (table,)).fetchone()
    return bool(row and row[0])


def global_state(conn: psycopg.Connection[Any]) -> str:
    """Digest of what every chunk depends on besides its own rows: deployments (site ids),
    annotations (``annotated_invalid``) and calibration activations, versions and spans."""
    parts = [str(v) for v in (conn.execute(_STATE).fetchone() or ())]
    if _exists(conn, "calibration_activations"):
        parts += [str(v) for v in (conn.execute(_CAL_STATE).fetchone() or ())]
    if _exists(conn, "calibration_spans"):
        parts += [str(v) for v in (conn.execute(_SPANS_STATE).fetchone() or ())]
    return hashlib.sha256("/".join(parts).encode()).hexdigest()[:16]


#: the calibrated values of a span, every version: a value added to a version that is
#: already active (a job finishing later, a re-run with --force) changes the count, one
#: replaced by another version's changes the sum of version ids
_DAY_CAL = """
SELECT (ts AT TIME ZONE 'UTC')::date AS day, count(*) AS rows, sum(version_id) AS versions
FROM calibrated_values WHERE ts >= %(start)s AND ts < %(end)s GROUP BY 1
"""


def cal_days(conn: psycopg.Connection[Any], start: date, end: date) -> dict[date, list[int]]:
    """Per UTC day in ``[start, end)``: [calibrated values, sum of their version ids] (days
    without calibrated values are absent; empty without the calibration tables)."""
    if not _exists(conn, "calibrated_values"):
        return {}
    params = {"start": utc_midnight(start), "end": utc_midnight(end)}
    return {r[0]: [int(r[1]), int(r[2] or 0)] for r in conn.execute(_DAY_CAL, params).fetchall()}


def cal_marker(days: dict[date, list[int]], start: date, end: date) -> list[int]:
    """The calibrated part of chunk ``[start, end)``'s watermark from :func:`cal_days`."""
    mine = [v for d, v in days.items() if start <= d < end]
    return [sum(v[0] for v in mine), sum(v[1] for v in mine)]


_DAY_RAW = sql.SQL(
    """
SELECT (r.ts AT TIME ZONE 'UTC')::date AS day, count(*) AS rows, max(r.received_at) AS newest,
       sum({}) AS digest
FROM readings r WHERE r.ts >= %(start)s AND r.ts < %(end)s GROUP BY 1
"""
).format(RAW_DIGEST)

#: the same per device along the (device_id, ts) index: for short spans (the nightly run)
#: cheaper than the sequential scan PostgreSQL picks for a ts range without an index of its own
_DAY_RAW_INDEXED = sql.SQL(
    """
SELECT (r.ts AT TIME ZONE 'UTC')::date AS day, count(*) AS rows, max(r.received_at) AS newest,
       sum({}) AS digest
FROM devices d
CROSS JOIN LATERAL (SELECT device_id, seq, ts, received_at, flags FROM readings r
                    WHERE r.device_id = d.device_id AND r.ts >= %(start)s AND r.ts < %(end)s) r
GROUP BY 1
"""
).format(RAW_DIGEST)

#: spans up to this long use the per-device index
INDEXED_SPAN = timedelta(days=62)

_DAY_HOURLY = sql.SQL(
    """
SELECT (h.hour_start AT TIME ZONE 'UTC')::date AS day, count(*) AS rows, sum({}) AS digest
FROM rollup_hourly h WHERE h.hour_start >= %(start)s AND h.hour_start < %(end)s GROUP BY 1
"""
).format(_hourly_digest())


def day_watermarks(
    conn: psycopg.Connection[Any], dataset: str, start: date, end: date
) -> dict[date, dict[str, Any]]:
    """Per UTC day in ``[start, end)``: the numbers a chunk's watermark sums (days without
    rows are absent)."""
    if dataset == "annotations":
        return _annotation_days(conn, start, end)
    if dataset == "raw":
        q = _DAY_RAW_INDEXED if end - start <= INDEXED_SPAN else _DAY_RAW
    else:
        q = _DAY_HOURLY
    params = {"start": utc_midnight(start), "end": utc_midnight(end)}
    out: dict[date, dict[str, Any]] = {}
    with conn.cursor(row_factory=dict_row) as cur:
        for r in cur.execute(q, params):
            out[r["day"]] = {"rows": int(r["rows"]), "digest": int(r["digest"] or 0)}
            if dataset == "raw":
                out[r["day"]]["newest"] = r["newest"].astimezone(UTC)
    return out


def chunk_watermark(
    dataset: str,
    days: dict[date, dict[str, Any]],
    start: date,
    end: date,
    state: str,
    cal: dict[date, list[int]],
) -> dict[str, Any]:
    """The watermark of chunk ``[start, end)`` from :func:`day_watermarks` and
    :func:`cal_days`."""
    mine = [v for d, v in days.items() if start <= d < end]
    if dataset == "annotations":
        return {"state": state, "digest": digest(sum(v["digest"] for v in mine))}
    if dataset == "raw":
        newest = max((v["newest"] for v in mine), default=None)
        return {
            "rows": sum(v["rows"] for v in mine),
            "newest": newest.isoformat() if newest else None,
            "digest": digest(sum(v["digest"] for v in mine)),
            "state": state,
            "cal": cal_marker(cal, start, end),
        }
    return {
        "rows": sum(v["rows"] for v in mine),
        "digest": digest(sum(v["digest"] for v in mine)),
        "state": state,
        "cal": cal_marker(cal, start, end),
    }


def _raw_select(calibrated: bool) -> sql.Composed:
    cols: list[sql.Composable] = [sql.SQL("r.{}").format(sql.Identifier(c)) for c in RAW_BASE]
    if calibrated:
        cols += [
            sql.SQL("{} AS {}").format(expr, sql.Identifier(name))
            for name, expr in calibration.cal_columns(True)
        ]
    cols.append(sql.SQL("{} AS wm_digest").format(RAW_DIGEST))
    return sql.SQL(
        "SELECT {} FROM readings r{} WHERE r.device_id = %(device)s AND r.ts >= %(start)s "
        "AND r.ts < %(end)s ORDER BY r.ts"
    ).format(sql.SQL(", ").join(cols), calibration.cal_joins(calibrated))


def _hourly_select(by_device: bool = False) -> sql.Composed:
    """The rollup hours of [start, end) with their site and watermark digest; ``by_device``:
    only those of ``%(devices)s`` (the API's hourly download)."""
    cols: list[sql.Composable] = []
    for q in POLLUTANTS:
        n, s = sql.Identifier(f"{q}_n"), sql.Identifier(f"{q}_sum")
        cols += [
            sql.SQL("h.{n} AS {a}").format(n=n, a=sql.Identifier(f"{q}__n")),
            sql.SQL("(h.{s} / nullif(h.{n}, 0))::float8 AS {a}").format(
                s=s, n=n, a=sql.Identifier(f"{q}__mean")
            ),
            sql.SQL("h.{} AS {}").format(sql.Identifier(f"{q}_min"), sql.Identifier(f"{q}__min")),
            sql.SQL("h.{} AS {}").format(sql.Identifier(f"{q}_max"), sql.Identifier(f"{q}__max")),
        ]
    return sql.SQL(
        "SELECT h.device_id, d.site_id, h.hour_start, h.window_s, h.n_expected::int8, "
        "h.n_stored::int8, h.n_valid::int8, {}, {} AS wm_digest FROM rollup_hourly h "
        "LEFT JOIN LATERAL (SELECT site_id FROM deployments d WHERE d.device_id = h.device_id "
        "AND d.valid_from <= h.hour_start AND (d.valid_to IS NULL OR d.valid_to > h.hour_start) "
        "ORDER BY d.valid_from DESC LIMIT 1) d ON true "
        "WHERE h.hour_start >= %(start)s AND h.hour_start < %(end)s{} "
        "ORDER BY h.device_id, h.hour_start"
    ).format(
        sql.SQL(", ").join(cols), _hourly_digest(), _BY_DEVICE["h"] if by_device else sql.SQL("")
    )


_BY_DEVICE = {a: sql.SQL(f" AND {a}.device_id = ANY(%(devices)s)") for a in ("h", "c")}


_HOURLY_CAL = sql.SQL(
    """
SELECT c.device_id, date_trunc('hour', c.ts, 'UTC') AS hour_start, c.pollutant,
       avg(c.value)::float8 AS mean_calibrated, avg(c.u)::float8 AS uncertainty,
       max(c.version_id)::int8 AS calibration_id, count(*)::int8 AS n_calibrated
FROM calibrated_current c
JOIN readings r ON r.device_id = c.device_id AND r.ts = c.ts AND r.seq = c.seq
WHERE c.ts >= %(start)s AND c.ts < %(end)s{by_device}
  AND ((r.flags | CASE WHEN EXISTS (
        SELECT 1 FROM annotations a WHERE a.device_id = r.device_id AND a.invalidates
          AND a.revoked_at IS NULL AND r.ts >= a.starts_at AND r.ts < a.ends_at)
       THEN {ann} ELSE 0 END) & {mask}) = 0
GROUP BY 1, 2, 3
"""
)

_ANY_CAL = "SELECT EXISTS (SELECT 1 FROM calibrated_values WHERE ts >= %(start)s AND ts < %(end)s)"


_ANNOTATION_COLS = tuple(c for c in ANNOTATION_COLUMNS if c not in ANNOTATION_PERSONAL)
#: the staff annotations overlapping [start, end): who made them is left out (personal data)
_ANNOTATIONS = sql.SQL(
    "SELECT {} FROM annotations WHERE starts_at < %(end)s AND ends_at > %(start)s "
    "ORDER BY device_id, starts_at, annotation_id"
).format(sql.SQL(", ").join(map(sql.Identifier, _ANNOTATION_COLS)))


#: per UTC day in [start, end) that staff annotations overlap: the sum of a 64-bit hash of
#: each one's published columns (an edit of any, kind and reason too, shows; the global state
#: covers only what decides the readings' annotated_invalid)
_DAY_ANNOTATIONS = sql.SQL(
    """
SELECT d::date AS day, sum(hashtextextended(concat_ws('|', {}), 0)) AS digest
FROM annotations a
CROSS JOIN LATERAL generate_series(
    date_trunc('day', greatest(a.starts_at, %(start)s) AT TIME ZONE 'UTC'),
    (least(a.ends_at, %(end)s) - interval '1 microsecond') AT TIME ZONE 'UTC',
    interval '1 day') d
WHERE a.starts_at < %(end)s AND a.ends_at > %(start)s
GROUP BY 1
"""
).format(sql.SQL(", ").join(sql.Identifier("a", c) for c in _ANNOTATION_COLS))


def _annotation_days(
    conn: psycopg.Connection[Any], start: date, end: date
) -> dict[date, dict[str, Any]]:
    params = {"start": utc_midnight(start), "end": utc_midnight(end)}
    return {r[0]: {"digest": int(r[1])} for r in conn.execute(_DAY_ANNOTATIONS, params)}


class Source:
    """One worker's connections: psycopg for small queries, ADBC for the bulk rows."""

    def __init__(self, url: str, timezone: str) -> None:
        import adbc_driver_postgresql.dbapi as adbc  # type: ignore[import-untyped]

        self.url = url
        self.timezone = timezone
        self.conn = psycopg.connect(url, autocommit=True)
        self.conn.execute("SET jit = off")  # JIT compiles for seconds before a short query
        # the watermarks digest times as text: the same in every session, whatever its zone
        self.conn.execute("SET TIME ZONE 'UTC'")
        self.adbc = adbc.connect(url)
        with self.adbc.cursor() as cur:
            cur.execute("SET jit = off")
            cur.execute("SET TIME ZONE 'UTC'")
        self.cal_on = bool(
            (
                self.conn.execute("SELECT to_regclass('calibrated_current') IS NOT NULL").fetchone()
                or (False,)
            )[0]
        )
        self._mogrify = psycopg.ClientCursor(self.conn).mogrify
        self._raw = {c: _raw_select(c) for c in (False, True)}

    def close(self) -> None:
        self.adbc.close()
        self.conn.close()

    def devices(self) -> list[str]:
        return [r[0] for r in self.conn.execute("SELECT device_id FROM devices ORDER BY 1")]

    def _segments(self, devices: list[str], a: datetime, b: datetime) -> list[export.Segment]:
        async def run() -> list[export.Segment]:
            aconn = await psycopg.AsyncConnection.connect(self.url, row_factory=dict_row)
            async with aconn:
                return await export.segments(aconn, devices, a, b, self.cal_on)

        return asyncio.run(run())

    def _arrow(self, query: str) -> Any:
        with self.adbc.cursor() as cur:
            cur.execute(query)
            return cur.fetch_arrow_table()

    # -- annotations -------------------------------------------------------------------

    def annotations(self, start: date, end: date) -> Any:
        """The staff annotations overlapping the span's days, in the annotations schema
        (no personal names), ordered by device and start."""
        import pyarrow as pa  # type: ignore[import-untyped]
        import pyarrow.compute as pc  # type: ignore[import-untyped]

        schema = arrow_schema("annotations", self.timezone)
        rows = self.conn.execute(
            _ANNOTATIONS, {"start": utc_midnight(start), "end": utc_midnight(end)}
        ).fetchall()
        cols = {name: [r[i] for r in rows] for i, name in enumerate(_ANNOTATION_COLS)}
        out = {}
        for f in schema:
            if f.name.endswith("_local"):
                utc = pa.array(cols[f.name.removesuffix("_local")], pa.timestamp("us", tz="UTC"))
                out[f.name] = pc.local_timestamp(utc.cast(pa.timestamp("us", tz=self.timezone)))
            elif f.name == "active":
                out[f.name] = pa.array([r is None for r in cols["revoked_at"]], pa.bool_())
            else:
                out[f.name] = pa.array(cols[f.name], f.type)
        return pa.table(out, schema=schema)

    # -- raw ---------------------------------------------------------------------------

    def raw(self, start: date, end: date) -> Iterator[tuple[Any, dict[str, Any]]]:
        """(table in the raw schema, partial watermark) per device with rows in the span."""
        a, b = utc_midnight(start), utc_midnight(end)
        by_device: dict[str, list[export.Segment]] = {}
        for seg in self._segments(self.devices(), a, b):
            by_device.setdefault(seg.device_id, []).append(seg)
        for device, segs in by_device.items():
            calibrated = any(s.calibrated for s in segs)
            q = self._mogrify(self._raw[calibrated], {"device": device, "start": a, "end": b})
            t = self._arrow(q)
            if t.num_rows:
                yield self._raw_table(device, segs, t)

    def _raw_table(
        self, device: str, segs: list[export.Segment], t: Any
    ) -> tuple[Any, dict[str, Any]]:
        import pyarrow as pa
        import pyarrow.compute as pc

        schema = arrow_schema("raw", self.timezone)
        n = t.num_rows
        ts = t.column("ts").cast(pa.timestamp("us", tz="UTC"))
        ts_us = ts.cast(pa.int64()).to_numpy()
        starts = np.array([int(s.start.timestamp() * 1_000_000) for s in segs], dtype=np.int64)
        idx = np.searchsorted(starts, ts_us, side="right") - 1
        sites = [s.site_id for s in segs]
        names = sorted({s for s in sites if s is not None})
        code = np.array([names.index(s) if s is not None else -1 for s in sites], np.int32)[idx]
        site = pa.DictionaryArray.from_arrays(
            pa.array(code, mask=code < 0), pa.array(names, pa.string())
        ).dictionary_decode()
        stored = t.column("flags").to_numpy()
        ann = np.array([s.extra_flags for s in segs], dtype=np.int64)[idx]
        flags = stored | ann
        local = pc.local_timestamp(ts.cast(pa.timestamp("us", tz=self.timezone)))
        cols: dict[str, Any] = {
            "device_id": pa.DictionaryArray.from_arrays(
                pa.array(np.zeros(n, np.int32)), pa.array([device])
            ).dictionary_decode(),
            "site_id": site,
            "ts": ts,
            "ts_local": local,
            "flags": pa.array(flags, pa.int64()),
            "valid": pa.array((flags & INVALID_MASK) == 0),
        }
        have = set(t.column_names)
        arrays = []
        for f in schema:
            if f.name in cols:
                arrays.append(cols[f.name])
            elif f.name in have:
                arrays.append(t.column(f.name).cast(f.type))
            else:
                arrays.append(pa.nulls(n, f.type))
        newest = pc.max(t.column("received_at")).as_py()
        wm = {"rows": n, "newest": newest, "digest": _sum64(t.column("wm_digest"))}
        return pa.Table.from_arrays(arrays, schema=schema), wm

    # -- hourly ------------------------------------------------------------------------

    def hourly(
        self, start: date, end: date, devices: list[str] | None = None
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        """(pollutant code -> table in the hourly schema, partial watermark) of the span's
        UTC days; ``devices``: only theirs."""
        import pyarrow as pa
        import pyarrow.compute as pc

        params: dict[str, Any] = {"start": utc_midnight(start), "end": utc_midnight(end)}
        if devices is not None:
            params["devices"] = devices
        by_device = devices is not None
        t = self._arrow(self._mogrify(_hourly_select(by_device), params))
        wm = {"rows": t.num_rows, "digest": _sum64(t.column("wm_digest"))}
        cal = None
        if self.cal_on and t.num_rows and self.conn.execute(_ANY_CAL, params).fetchone() == (True,):
            cal_q = _HOURLY_CAL.format(
                ann=sql.Literal(int(ReadingFlag.ANNOTATED_INVALID)),
                mask=sql.Literal(INVALID_MASK),
                by_device=_BY_DEVICE["c"] if by_device else sql.SQL(""),
            )
            cal = self._arrow(self._mogrify(cal_q, params))
        out: dict[str, Any] = {}
        hour = t.column("hour_start").cast(pa.timestamp("us", tz="UTC"))
        local = pc.local_timestamp(hour.cast(pa.timestamp("us", tz=self.timezone)))
        n_exp = t.column("n_expected")
        for q, code in POLLUTANTS.items():
            unit = QUANTITIES[q].unit
            schema = arrow_schema("hourly", self.timezone, unit=unit)
            keep = pc.greater(t.column(f"{q}__n"), 0)
            if not pc.any(keep).as_py():
                continue
            # coverage of this pollutant: a box with a PM sensor and an SHT31 (or the NO2
            # module) stores a reading of each per window, so n_valid, the device's readings,
            # would count the hour twice over (as the API's series, and the daily means, do)
            coverage = pc.divide(pc.multiply(t.column(f"{q}__n").cast(pa.float64()), 100.0), n_exp)
            cols = {
                "device_id": t.column("device_id"),
                "site_id": t.column("site_id"),
                "hour_start": hour,
                "hour_start_local": local,
                "unit": pa.array([unit] * t.num_rows, pa.string()),
                "window_s": t.column("window_s"),
                "n_expected": n_exp,
                "n_stored": t.column("n_stored"),
                "n_valid": t.column("n_valid"),
                "coverage_pct": coverage,
                "n": t.column(f"{q}__n"),
                "mean": t.column(f"{q}__mean"),
                "min": t.column(f"{q}__min"),
                "max": t.column(f"{q}__max"),
                "valid": pc.greater_equal(coverage, HOURLY_VALID_PCT),
            }
            n = t.num_rows
            base = pa.table(
                {k: (v.cast(schema.field(k).type) if k in cols else v) for k, v in cols.items()}
            ).filter(keep)
            cal_cols = ("mean_calibrated", "uncertainty", "calibration_id", "n_calibrated")
            pol = calibration.CALIBRATED.get(q)
            if cal is not None and pol is not None:
                mine = cal.filter(pc.equal(cal.column("pollutant"), pol)).drop_columns(
                    ["pollutant"]
                )
                mine = mine.set_column(
                    1, "hour_start", mine.column("hour_start").cast(pa.timestamp("us", tz="UTC"))
                )
                base = base.join(mine, ["device_id", "hour_start"], join_type="left outer")
                base = base.sort_by([("device_id", "ascending"), ("hour_start", "ascending")])
            n = base.num_rows
            arrays = [
                base.column(f.name).cast(f.type)
                if f.name in base.column_names
                else pa.nulls(n, f.type)
                for f in schema
                if f.name in cols or f.name in cal_cols
            ]
            out[code] = pa.Table.from_arrays(arrays, schema=schema)
        return out, wm


def days(start: date, end: date) -> Iterator[date]:
    d = start
    while d < end:
        yield d
        d += timedelta(days=1)
