"""Downloads streamed in constant memory: CSV (long, wide, openair) and Parquet.

Rows come out of PostgreSQL with ``COPY (SELECT ...) TO STDOUT`` one device and deployment
segment at a time (each ``ORDER BY ts`` walks the ``(device_id, ts)`` index), are read from
libpq directly (:class:`_CopyOut`), gathered into ~256 KiB chunks and handed to the client;
nothing holds more than a chunk. Timestamps are PostgreSQL's ISO output in UTC (cheaper than
``to_char``). Segments inside an invalidating staff annotation add ANNOTATED_INVALID to
``flags``; devices without calibrated values skip the calibration joins. Parquet is built
from the same COPY stream: each ~8 MiB of CSV is parsed by pyarrow (in a worker thread) and
written as one row group, which is sent before the next is read.

Shapes (columns in :func:`columns`):

- ``wide``: one row per reading, a column per quantity, calibrated value, uncertainty and
  calibration id per calibrated quantity, flags and ``valid``;
- ``long``: one row per reading and quantity (tidy);
- ``openair``: ``date`` (UTC, ``YYYY-MM-DD HH:MM:SS``), ``site`` and one column per pollutant
  named as R's openair expects (``pm25``, ``pm10``, ``no2`` in µg/m³, ``ws``/``wd`` when the
  quantity registry has wind), then the calibrated values, flags and ids.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import io
from collections import deque
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any, Literal

import psycopg
from psycopg import AsyncConnection, pq, sql
from psycopg_pool import AsyncConnectionPool

from luftnett.api import calibration
from luftnett.api.quality import INVALID_MASK
from luftnett.contracts.units import QUANTITIES, ReadingFlag
from luftnett.db.schema import VALUE_COLUMNS
from luftnett.timefmt import LOCAL_TZ

__all__ = [
    "Column",
    "Queries",
    "Segment",
    "Shape",
    "Sink",
    "columns",
    "segments",
    "stream_csv",
    "stream_parquet",
]

Shape = Literal["wide", "long", "openair"]
CHUNK = 256 * 1024
PARQUET_BATCH = 4 * 1024 * 1024
#: openair column names of the pollutants (others keep their luftnett names)
OPENAIR_NAMES = {"pm1_ugm3": "pm1", "pm25_ugm3": "pm25", "pm10_ugm3": "pm10", "no2_ppb": "no2"}
WIND = {"ws_ms": "ws", "wd_deg": "wd"}


@dataclass(frozen=True, slots=True)
class Column:
    name: str
    expr: sql.Composable  # CSV expression
    arrow: str  # "string", "int64", "float64", "bool", "timestamp" (UTC), "local" (wall clock)
    unit: str | None
    description: str
    pexpr: sql.Composable | None = None  # Parquet expression, when it differs


@dataclass(frozen=True, slots=True)
class Segment:
    device_id: str
    site_id: str | None
    start: datetime
    end: datetime
    #: bits OR-ed into every reading's flags here: ANNOTATED_INVALID inside an active
    #: invalidating staff annotation, else 0
    extra_flags: int = 0
    #: the device has calibrated values here (the calibration joins are needed)
    calibrated: bool = False
    #: the calibration versions in force over the whole segment per pollutant of
    #: calibration.CALIBRATED (one per sensor model of the device with a version then; empty:
    #: none in force), when ``calibrated``
    versions: tuple[tuple[int, ...], ...] = ()


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _s(text: str) -> sql.Composable:
    return sql.SQL(text)


def _ts(openair: bool) -> tuple[sql.Composable, sql.Composable]:
    """(CSV, Parquet) expressions of the window end. The CSV has PostgreSQL's own ISO output
    in UTC (the session sets DateStyle ISO and TimeZone UTC): ``2026-05-01 00:05:00+00``, or
    for openair ``2026-05-01 00:05:00`` (whole seconds); cheaper than to_char per row."""
    csv = _s("date_trunc('second', r.ts AT TIME ZONE 'UTC')") if openair else _s("r.ts")
    return csv, _s("(extract(epoch FROM r.ts) * 1000000)::bigint")


def _ts_local() -> Column:
    """The window end as wall-clock time in LOCAL_TZ (PostgreSQL's ISO text without offset;
    in Parquet a timestamp without time zone, as the archive's ``ts_local``)."""
    local = sql.SQL("(r.ts AT TIME ZONE {})").format(sql.Literal(LOCAL_TZ.key))
    return Column(
        "ts_local",
        local,
        "local",
        None,
        f"window end as wall-clock time in {LOCAL_TZ.key}, without offset (the hour after "
        "02:00 comes twice on the last Sunday of October; use ts to order)",
        sql.SQL("(extract(epoch FROM {}) * 1000000)::bigint").format(local),
    )


def _times(value: sql.Composable, factor: float) -> sql.Composable:
    """``value`` (a ``real``) times ``factor``, in decimal: a real times a float would widen
    to double precision and print 17.8 as 17.799999237060547; its numeric is its shortest
    decimal (17.8), and numeric times the factor is exact."""
    if factor == 1.0:
        return value
    return sql.SQL("({}::numeric * {})").format(value, sql.Literal(factor))


def columns(shape: Shape, cal_on: bool, no2_factor: float) -> list[Column]:
    """Output columns of a shape, with the unit and meaning of each (the metadata file)."""
    cal = dict(calibration.cal_columns(cal_on))
    ts_csv, ts_pq = _ts(shape == "openair")
    out: list[Column] = []
    site = sql.SQL("%(site)s::text")
    valid = sql.SQL("((r.flags | %(ann)s::bigint) & {}) = 0").format(sql.Literal(INVALID_MASK))
    flags = [
        Column(
            "flags",
            _s("(r.flags | %(ann)s::bigint)"),
            "int64",
            None,
            "flag bit mask (see flags in metadata); annotated_invalid (bit 10) is set while an "
            "active invalidating staff annotation covers the reading",
        ),
        Column(
            "valid",
            sql.SQL("CASE WHEN {} THEN 'true' ELSE 'false' END").format(valid),
            "bool",
            None,
            "true when no invalidating flag is set",
            valid,
        ),
    ]
    if shape == "long":
        out += [
            Column("device_id", _s("r.device_id"), "string", None, "device id"),
            Column("site_id", site, "string", None, "site of the deployment, empty if none"),
            Column("seq", _s("r.seq"), "int64", None, "per-device sequence number"),
            Column(
                "ts",
                ts_csv,
                "timestamp",
                None,
                "window end, UTC (ISO 8601, e.g. 2026-05-01 00:05:00+00)",
                ts_pq,
            ),
            _ts_local(),
            Column("quantity", _s("v.quantity"), "string", None, "quantity name"),
            Column("unit", _s("v.unit"), "string", None, "unit of value"),
            Column("value", _s("v.value"), "float64", None, "raw value as measured"),
            Column("value_calibrated", _s("v.cal"), "float64", None, "calibrated value"),
            Column(
                "uncertainty",
                _s("v.u"),
                "float64",
                None,
                "standard uncertainty of value_calibrated",
            ),
            Column("calibration_id", _s("v.cal_id"), "int64", None, "calibration version id"),
            *flags,
        ]
        return out
    if shape == "openair":
        # one row per site and time (openair's data frame): the readings a box's sensors
        # stamp with the same window end (a PM sensor's and the NO2 module's) are merged
        # (GROUP BY r.ts in select()): values averaged (one reading has each, as a rule),
        # versions the newest, flags OR-ed, valid when all of them are
        def mean(expr: sql.Composable) -> sql.Composable:
            return sql.SQL("avg({})::real").format(expr)

        ts_csv_1 = sql.SQL("min({})").format(ts_csv)
        ts_pq_1 = sql.SQL("min({})").format(ts_pq)
        out += [
            Column(
                "date",
                ts_csv_1,
                "timestamp",
                None,
                "window end, UTC (YYYY-MM-DD HH:MM:SS); one row per site and time",
                ts_pq_1,
            ),
            Column(
                "site",
                sql.SQL("min(coalesce(%(site)s::text, r.device_id))"),
                "string",
                None,
                "site id (device id outside deployments)",
            ),
            Column("device_id", _s("min(r.device_id)"), "string", None, "device id"),
        ]
        for q, name in OPENAIR_NAMES.items():
            f = no2_factor if q == "no2_ppb" else 1.0
            expr = _times(mean(sql.SQL("r.{}").format(sql.Identifier(q))), f)
            unit = "µg/m³"
            out.append(Column(name, expr, "float64", unit, f"{QUANTITIES[q].description} (µg/m³)"))
        for q, name in WIND.items():
            if q in QUANTITIES:
                expr = sql.SQL("avg((r.extra->>{})::float8)").format(sql.Literal(q))
                out.append(
                    Column(name, expr, "float64", QUANTITIES[q].unit, QUANTITIES[q].description)
                )
        for q in calibration.CALIBRATED:
            name = OPENAIR_NAMES[q]
            f = no2_factor if q == "no2_ppb" else 1.0
            out += [
                Column(
                    f"{name}_cal",
                    _times(mean(cal[f"{q}_cal"]), f),
                    "float64",
                    "µg/m³",
                    f"calibrated {name}",
                ),
                Column(
                    f"{name}_u",
                    _times(mean(cal[f"{q}_u"]), f),
                    "float64",
                    "µg/m³",
                    f"standard uncertainty of {name}_cal",
                ),
                Column(
                    f"{name}_calibration_id",
                    sql.SQL("max({})").format(cal[f"{q}_calibration_id"]),
                    "int64",
                    None,
                    f"calibration version of {name}_cal",
                ),
            ]
        merged_flags = sql.SQL("bit_or(r.flags | %(ann)s::bigint)")
        valid_all = sql.SQL("bool_and({})").format(valid)
        out += [
            Column(
                "flags",
                merged_flags,
                "int64",
                None,
                "flag bit mask of the row's readings, OR-ed (see flags in metadata); "
                "annotated_invalid (bit 10) is set while an active invalidating staff "
                "annotation covers them",
            ),
            Column(
                "valid",
                sql.SQL("CASE WHEN {} THEN 'true' ELSE 'false' END").format(valid_all),
                "bool",
                None,
                "true when none of the row's readings has an invalidating flag "
                "(valid_only=true leaves the invalid readings out before they are merged)",
                valid_all,
            ),
        ]
        return out
    out += [
        Column("device_id", _s("r.device_id"), "string", None, "device id"),
        Column("site_id", site, "string", None, "site of the deployment, empty if none"),
        Column("seq", _s("r.seq"), "int64", None, "per-device sequence number"),
        Column(
            "ts",
            ts_csv,
            "timestamp",
            None,
            "window end, UTC (ISO 8601, e.g. 2026-05-01 00:05:00+00)",
            ts_pq,
        ),
        _ts_local(),
        Column("window_s", _s("r.window_s"), "float64", "s", "averaging window"),
        Column("n_samples", _s("r.n_samples"), "int64", None, "frames averaged"),
        Column("sensor_model", _s("r.sensor_model"), "string", None, "driver name"),
    ]
    for q in VALUE_COLUMNS:
        expr = sql.SQL("r.{}").format(sql.Identifier(q))
        out.append(Column(q, expr, "float64", QUANTITIES[q].unit, QUANTITIES[q].description))
    for q in calibration.CALIBRATED:
        u = QUANTITIES[q].unit
        out += [
            Column(f"{q}_cal", cal[f"{q}_cal"], "float64", u, f"calibrated {q}"),
            Column(f"{q}_u", cal[f"{q}_u"], "float64", u, f"standard uncertainty of {q}_cal"),
            Column(
                f"{q}_calibration_id",
                cal[f"{q}_calibration_id"],
                "int64",
                None,
                f"calibration version of {q}_cal",
            ),
        ]
    return out + flags


def _long_values(cal_on: bool) -> sql.Composable:
    cal = dict(calibration.cal_columns(cal_on))
    rows = []
    for q in VALUE_COLUMNS:
        if q in calibration.CALIBRATED:
            c, u, i = cal[f"{q}_cal"], cal[f"{q}_u"], cal[f"{q}_calibration_id"]
        else:
            c, u, i = _s("NULL::real"), _s("NULL::real"), _s("NULL::bigint")
        rows.append(
            sql.SQL("({q}, {unit}, r.{col}, {c}, {u}, {i})").format(
                q=sql.Literal(q),
                # bound client-side with parameters: a literal % must be doubled
                unit=sql.SQL(sql.Literal(QUANTITIES[q].unit).as_string().replace("%", "%%")),
                col=sql.Identifier(q),
                c=c,
                u=u,
                i=i,
            )
        )
    return sql.SQL(
        " CROSS JOIN LATERAL (VALUES {}) AS v(quantity, unit, value, cal, u, cal_id)"
    ).format(sql.SQL(", ").join(rows))


def select(
    shape: Shape, cols: list[Column], cal_on: bool, valid_only: bool, parquet: bool
) -> sql.Composed:
    exprs = [
        sql.SQL("{} AS {}").format(
            c.pexpr if parquet and c.pexpr is not None else c.expr, sql.Identifier(c.name)
        )
        for c in cols
    ]
    where = [_s("r.device_id = %(device)s AND r.ts >= %(start)s AND r.ts < %(end)s")]
    if valid_only:
        where.append(
            sql.SQL("((r.flags | %(ann)s::bigint) & {}) = 0").format(sql.Literal(INVALID_MASK))
        )
    if shape == "long":
        where.append(_s("v.value IS NOT NULL"))
    return sql.SQL(
        "SELECT {cols} FROM readings r{cal}{long} WHERE {where}{group} ORDER BY r.ts"
    ).format(
        cols=sql.SQL(", ").join(exprs),
        cal=calibration.cal_joins_by_version() if cal_on else sql.SQL(""),
        long=_long_values(cal_on) if shape == "long" else sql.SQL(""),
        where=sql.SQL(" AND ").join(where),
        # openair: a row per time (the columns are aggregates; docs in columns())
        group=sql.SQL(" GROUP BY r.ts") if shape == "openair" else sql.SQL(""),
    )


_DEPLOYMENTS = """
SELECT site_id, greatest(valid_from, %(start)s) AS a,
       least(coalesce(valid_to, 'infinity'), %(end)s) AS b
FROM deployments WHERE device_id = %(device)s AND valid_from < %(end)s
  AND (valid_to IS NULL OR valid_to > %(start)s)
ORDER BY valid_from
"""


#: active invalidating staff annotations of a device in [start, end) (readings_effective's rule)
_ANNOTATIONS = """
SELECT greatest(starts_at, %(start)s) AS a, least(ends_at, %(end)s) AS b
FROM annotations WHERE device_id = %(device)s AND invalidates AND revoked_at IS NULL
  AND starts_at < %(end)s AND ends_at > %(start)s
ORDER BY starts_at
"""


def _merge(spans: list[tuple[datetime, datetime]]) -> list[tuple[datetime, datetime]]:
    out: list[tuple[datetime, datetime]] = []
    for a, b in sorted(spans):
        if out and a <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], b))
        else:
            out.append((a, b))
    return out


def _cut(seg: Segment, spans: list[tuple[datetime, datetime]]) -> list[Segment]:
    """``seg`` split at the annotated spans; the pieces inside them carry ANNOTATED_INVALID."""
    out: list[Segment] = []
    t = seg.start
    for a, b in spans:
        a, b = max(a, seg.start), min(b, seg.end)
        if a >= b:
            continue
        if a > t:
            out.append(Segment(seg.device_id, seg.site_id, t, a))
        out.append(Segment(seg.device_id, seg.site_id, a, b, int(ReadingFlag.ANNOTATED_INVALID)))
        t = b
    if t < seg.end:
        out.append(Segment(seg.device_id, seg.site_id, t, seg.end))
    return out


_HAS_CALIBRATED = "SELECT EXISTS (SELECT 1 FROM calibrated_values WHERE device_id = %(device)s)"

#: the versions in force per pollutant (one per sensor model the device has a span of, or its
#: own) at the start and wherever a span of the device begins or ends inside [start, end):
#: ``calibration_spans``, the rows ``calibrated_current`` joins each reading's values to. A
#: reading has values only of versions that apply to it (its device's own, or its own sensor
#: model's fleet default), so joining the values of these versions gives each reading its one.
_VERSIONS = """
WITH s AS (
    SELECT pollutant, version_id, valid_from, valid_to FROM calibration_spans
    WHERE device_id = %(device)s AND pollutant = ANY(%(pollutants)s)
      AND valid_from < %(end)s AND valid_to > %(start)s
), pts AS (
    SELECT %(start)s::timestamptz AS t
    UNION SELECT valid_from FROM s WHERE valid_from > %(start)s
    UNION SELECT valid_to FROM s WHERE valid_to < %(end)s
)
SELECT pts.t, s.pollutant, array_agg(s.version_id ORDER BY s.version_id) AS versions
FROM pts LEFT JOIN s ON s.valid_from <= pts.t AND pts.t < s.valid_to
GROUP BY 1, 2 ORDER BY 1
"""

Versions = tuple[tuple[int, ...], ...]


async def _version_spans(
    conn: AsyncConnection[Any], device: str, start: datetime, end: datetime
) -> list[tuple[datetime, datetime, Versions]]:
    """[start, end) cut where the versions in force of any calibrated pollutant change."""
    pollutants = list(calibration.CALIBRATED.values())
    params = {"device": device, "start": start, "end": end, "pollutants": pollutants}
    cur = await conn.execute(_VERSIONS, params)
    at: dict[datetime, dict[str, tuple[int, ...]]] = {}
    for r in await cur.fetchall():
        got = at.setdefault(r["t"], {})
        if r["pollutant"] is not None:
            got[r["pollutant"]] = tuple(r["versions"])
    out: list[tuple[datetime, datetime, Versions]] = []
    for t in sorted(at):
        versions = tuple(at[t].get(p, ()) for p in pollutants)
        if out and out[-1][2] == versions:
            continue
        if out:
            out[-1] = (out[-1][0], t, out[-1][2])
        out.append((t, end, versions))
    return out


def _by_version(seg: Segment, spans: list[tuple[datetime, datetime, Versions]]) -> list[Segment]:
    """``seg`` cut at the version changes; pieces with no version in force skip the joins."""
    out: list[Segment] = []
    for a, b, versions in spans:
        a, b = max(a, seg.start), min(b, seg.end)
        if a < b:
            on = any(versions)
            out.append(replace(seg, start=a, end=b, calibrated=on, versions=versions if on else ()))
    return out


async def segments(
    conn: AsyncConnection[Any],
    devices: list[str],
    start: datetime,
    end: datetime,
    cal_on: bool = False,
) -> list[Segment]:
    """Each device's [start, end) cut by its deployments (site None outside them) and by its
    active invalidating annotations (whose readings get ANNOTATED_INVALID in ``flags``, as
    the ``readings_effective`` view and the rollups have it)."""
    out: list[Segment] = []
    for d in devices:
        params = {"device": d, "start": start, "end": end}
        cur = await conn.execute(_DEPLOYMENTS, params)
        mine: list[Segment] = []
        t = start
        for r in await cur.fetchall():
            a, b = r["a"], r["b"]
            if a > t:
                mine.append(Segment(d, None, t, a))
            mine.append(Segment(d, r["site_id"], max(a, t), b))
            t = max(t, b)
        if t < end:
            mine.append(Segment(d, None, t, end))
        cur = await conn.execute(_ANNOTATIONS, params)
        spans = _merge([(r["a"], r["b"]) for r in await cur.fetchall()])
        versions: list[tuple[datetime, datetime, Versions]] = []
        if cal_on:
            cur = await conn.execute(_HAS_CALIBRATED, params)
            row = await cur.fetchone()
            if row and row["exists"]:
                versions = await _version_spans(conn, d, start, end)
        for seg in mine:
            if seg.start < seg.end:
                for piece in _cut(seg, spans) if spans else [seg]:
                    out += _by_version(piece, versions) if versions else [piece]
    return out


@dataclass(frozen=True, slots=True)
class Queries:
    """The SELECT of a download without and with the calibration joins; a segment of a device
    without any calibrated value takes the first (same columns, calibrated ones empty)."""

    plain: sql.Composed
    calibrated: sql.Composed | None = None


class _CopyOut:
    """``COPY ... TO STDOUT`` read from libpq directly, rows gathered into ~CHUNK pieces.

    psycopg's own COPY iteration returns one row per ``await`` (about 10 µs each in asyncio);
    here each row costs one ``PQgetCopyData`` call and an append, and the event loop is only
    awaited when libpq has no complete row buffered. The connection is closed (and so dropped
    by the pool) if the stream stops half-way, e.g. when the client goes away.
    """

    def __init__(self, conn: AsyncConnection[Any]) -> None:
        self.conn = conn
        self.pg = conn.pgconn
        self.loop = asyncio.get_running_loop()

    async def _io(self, write: bool = False) -> None:
        fut: asyncio.Future[None] = self.loop.create_future()

        def ready() -> None:
            if not fut.done():
                fut.set_result(None)

        fd = self.pg.socket
        add, remove = (
            (self.loop.add_writer, self.loop.remove_writer)
            if write
            else (self.loop.add_reader, self.loop.remove_reader)
        )
        add(fd, ready)
        try:
            await fut
        finally:
            remove(fd)

    async def _result(self) -> Any:
        while True:
            self.pg.consume_input()
            if not self.pg.is_busy():
                return self.pg.get_result()
            await self._io()

    def _raise(self, res: Any) -> None:
        msg = (res.error_message or b"").decode("utf-8", "replace").strip()
        raise psycopg.OperationalError(f"export query failed: {msg}")

    async def rows(self, stmt: bytes, buf: bytearray) -> AsyncIterator[bytes]:
        """Append the rows of ``stmt`` to ``buf``; yield (and clear) it whenever it is full."""
        pg = self.pg
        pg.send_query(stmt)
        while pg.flush():
            await self._io(write=True)
        res = await self._result()
        if res is None or res.status != pq.ExecStatus.COPY_OUT:
            while await self._result() is not None:
                pass
            self._raise(res)
        get = pg.get_copy_data
        while True:
            n, data = get(1)
            if n > 0:
                buf += data
                if len(buf) >= CHUNK:
                    yield bytes(buf)
                    buf.clear()
            elif n == 0:
                await self._io()
                pg.consume_input()
            else:
                break
        failed = None
        while (res := await self._result()) is not None:
            if res.status != pq.ExecStatus.COMMAND_OK:
                failed = res
        if failed is not None:
            self._raise(failed)


#: how far the next segment's COPY may run ahead of the one being sent (bytes): a second
#: connection produces it meanwhile, so two PostgreSQL backends work at once; memory stays
#: bounded by this, whatever the size of the download
LOOKAHEAD = 64 * 1024 * 1024


async def _produce(
    pool: AsyncConnectionPool[Any],
    queries: Queries,
    seg: Segment,
    header: bool,
    out: asyncio.Queue[bytes | None],
) -> None:
    """COPY one segment into ``out`` in ~CHUNK pieces, then None."""
    async with pool.connection() as conn:
        # timestamps as PostgreSQL writes them in ISO style, in UTC ("2026-05-01 00:00:00+00")
        await conn.execute("SET DateStyle = 'ISO, YMD'")
        await conn.execute("SET TIME ZONE 'UTC'")
        opts = sql.SQL("FORMAT csv, HEADER {}").format(sql.SQL("true" if header else "false"))
        params: dict[str, Any] = {
            "device": seg.device_id,
            "site": seg.site_id,
            "start": seg.start,
            "end": seg.end,
            "ann": seg.extra_flags,
        }
        for p, v in zip(calibration.CALIBRATED.values(), seg.versions, strict=False):
            params[calibration.version_param(p)] = list(v)
        query = queries.calibrated if seg.calibrated and queries.calibrated else queries.plain
        stmt = sql.SQL("COPY ({}) TO STDOUT WITH ({})").format(query, opts)
        text = psycopg.AsyncClientCursor(conn).mogrify(stmt, params).encode(conn.info.encoding)
        buf = bytearray()
        done = False
        try:
            async for chunk in _CopyOut(conn).rows(text, buf):
                await out.put(chunk)
            done = True
        finally:
            if not done:
                await conn.close()  # mid-COPY: the pool must not hand this connection out
    if buf:
        await out.put(bytes(buf))
    await out.put(None)


#: how many segments past the one being sent the prefetcher may have read (see _prefetch)
PREFETCH_AHEAD = 2

#: the rows of one segment, read by a bitmap heap scan that asks the OS for its heap blocks
#: ahead of reading them (posix_fadvise through effective_io_concurrency); count(r.flags)
#: makes it visit every heap block (count(*) would skip the all-visible ones)
_PREFETCH = """
SELECT count(r.flags) FROM readings r
WHERE r.device_id = %(device)s AND r.ts >= %(start)s AND r.ts < %(end)s
"""


async def _prefetch(
    pool: AsyncConnectionPool[Any], segs: list[Segment], sent: asyncio.Condition, pos: list[int]
) -> None:
    """Bring the index and heap blocks of the coming segments into the OS page cache.

    A COPY's index scan reads one 8 KiB block at a time and waits for each one the OS does not
    have yet (from a cold cache the two COPY backends spent much of their time waiting). This
    third connection reads each coming segment's rows first, with a bitmap scan that keeps
    ``effective_io_concurrency`` reads in flight, at most PREFETCH_AHEAD segments past the
    one being sent (``pos[0]``), so the COPYs then find their blocks in the page cache. It
    costs one cheap aggregate per segment (no rows leave the server); a failure here only
    means the COPYs read for themselves."""
    async with pool.connection() as conn:
        for j, seg in enumerate(segs):
            if j == 0 or seg.start >= seg.end:
                continue  # the first segment's COPY starts at once: nothing to win there
            async with sent:
                while j > pos[0] + PREFETCH_AHEAD:
                    await sent.wait()
            params = {"device": seg.device_id, "start": seg.start, "end": seg.end}
            async with conn.transaction():
                await conn.execute("SET LOCAL enable_indexscan = off")
                await conn.execute("SET LOCAL enable_seqscan = off")
                await conn.execute("SET LOCAL effective_io_concurrency = 64")
                await conn.execute(_PREFETCH, params)


async def _copy_chunks(
    pool: AsyncConnectionPool[Any],
    queries: Queries,
    segs: list[Segment],
    header: bool,
    lookahead: int = LOOKAHEAD,
) -> AsyncIterator[bytes]:
    """CSV bytes of the queries over every segment, in order, in chunks of ~CHUNK bytes.

    Segment i is sent while segment i + 1 is produced on a second connection into a queue of
    at most LOOKAHEAD bytes; when i is done, i + 2 starts. With more than two segments a third
    connection prefetches the blocks of the coming ones (:func:`_prefetch`)."""
    if not segs:
        # an empty download still has its header line
        segs = [Segment("", None, _EPOCH, _EPOCH)]
    pending = iter(enumerate(segs))
    running: deque[tuple[asyncio.Task[None], asyncio.Queue[bytes | None]]] = deque()
    sent = asyncio.Condition()
    pos = [0]  # index of the segment being sent
    prefetcher = (
        asyncio.create_task(_prefetch(pool, segs, sent, pos))
        if len(segs) > 2 and PREFETCH_AHEAD > 0
        else None
    )

    def start_next() -> None:
        nxt = next(pending, None)
        if nxt is None:
            return
        i, seg = nxt
        q: asyncio.Queue[bytes | None] = asyncio.Queue(maxsize=max(1, lookahead // CHUNK))
        task = asyncio.create_task(_produce(pool, queries, seg, header and i == 0, q))
        running.append((task, q))

    start_next()
    start_next()
    try:
        while running:
            task, q = running[0]
            while (chunk := await q.get()) is not None:
                yield chunk
            await task  # its error, if any
            running.popleft()
            async with sent:
                pos[0] += 1
                sent.notify_all()
            start_next()
    finally:
        tasks = [task for task, _ in running]
        if prefetcher is not None:
            if prefetcher.done() and not prefetcher.cancelled():
                prefetcher.exception()  # a failed prefetch only costs speed
            tasks.append(prefetcher)
        for task in tasks:
            task.cancel()
        if tasks:
            # let them close their connections; their CancelledError stays theirs
            await asyncio.wait(tasks)


async def stream_csv(
    pool: AsyncConnectionPool[Any], queries: Queries, segs: list[Segment]
) -> AsyncIterator[bytes]:
    async for chunk in _copy_chunks(pool, queries, segs, header=True):
        yield chunk


class Sink(io.RawIOBase):
    """A write-only file for pyarrow that keeps what was written until drained."""

    def __init__(self) -> None:
        self._parts: list[bytes] = []
        self._pos = 0

    def writable(self) -> bool:
        return True

    def write(self, b: Any) -> int:
        data = bytes(b)
        self._parts.append(data)
        self._pos += len(data)
        return len(data)

    def tell(self) -> int:
        return self._pos

    def drain(self) -> bytes:
        out = b"".join(self._parts)
        self._parts.clear()
        return out


def _arrow_schema(cols: list[Column]) -> Any:
    import pyarrow as pa  # type: ignore[import-untyped]

    types = {
        "string": pa.string(),
        "int64": pa.int64(),
        "float64": pa.float64(),
        "bool": pa.bool_(),
        "timestamp": pa.timestamp("us", tz="UTC"),
        "local": pa.timestamp("us"),
    }
    fields = []
    for c in cols:
        meta = {"description": c.description}
        if c.unit:
            meta["unit"] = c.unit
        fields.append(pa.field(c.name, types[c.arrow], metadata=meta))
    return pa.schema(fields)


async def stream_parquet(
    pool: AsyncConnectionPool[Any],
    queries: Queries,
    segs: list[Segment],
    cols: list[Column],
    metadata: dict[str, str],
) -> AsyncIterator[bytes]:
    import pyarrow as pa
    import pyarrow.csv as pacsv  # type: ignore[import-untyped]
    import pyarrow.parquet as pq  # type: ignore[import-untyped]

    schema = _arrow_schema(cols).with_metadata(metadata)
    read_types = {
        c.name: (pa.int64() if c.arrow in ("timestamp", "local") else schema.field(c.name).type)
        for c in cols
    }
    names = [c.name for c in cols]
    sink = Sink()
    # dictionaries only for the text columns: measured values are nearly all distinct, so a
    # dictionary would be built, found too large and dropped for each column chunk (a larger
    # file and more memory)
    strings = [c.name for c in cols if c.arrow == "string"]
    writer = pq.ParquetWriter(sink, schema, compression="zstd", use_dictionary=strings)

    def convert(data: bytes | memoryview) -> None:
        table = pacsv.read_csv(
            pa.BufferReader(data),  # no copy of the batch
            read_options=pacsv.ReadOptions(
                column_names=names, block_size=1 << 22, use_threads=False
            ),
            convert_options=pacsv.ConvertOptions(
                column_types=read_types,
                strings_can_be_null=True,
                quoted_strings_can_be_null=False,
                true_values=["t", "true"],
                false_values=["f", "false"],
            ),
        )
        arrays = [
            table.column(c.name).cast(schema.field(c.name).type)
            if c.arrow in ("timestamp", "local")
            else table.column(c.name)
            for c in cols
        ]
        writer.write_table(pa.Table.from_arrays(arrays, schema=schema))

    # one worker thread per export: pyarrow and the allocator keep per-thread state, so
    # spreading batches over the default pool's threads costs memory for nothing
    pool_1 = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="parquet")
    loop = asyncio.get_running_loop()
    # the chunks of a batch are joined once (one copy); pyarrow reads that buffer in place
    parts: list[bytes] = []
    size = 0
    try:
        # pyarrow's batches cost memory of their own: a shorter lookahead
        async for chunk in _copy_chunks(pool, queries, segs, header=False, lookahead=CHUNK * 16):
            parts.append(chunk)
            size += len(chunk)
            if size >= PARQUET_BATCH:
                data = b"".join(parts)
                cut = data.rfind(b"\n") + 1
                parts = [data[cut:]] if cut < len(data) else []
                size = len(data) - cut
                await loop.run_in_executor(pool_1, convert, memoryview(data)[:cut])
                del data
                yield sink.drain()
        if parts:
            await loop.run_in_executor(pool_1, convert, b"".join(parts))
        await loop.run_in_executor(pool_1, writer.close)
        yield sink.drain()
    finally:
        pool_1.shutdown(wait=True)  # a batch still converting finishes before the close
        if writer.is_open:
            writer.close()
