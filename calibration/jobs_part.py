"""One part of a reprocessing job (:mod:`luftnett.calibration.jobs`): the SQL that computes
and writes its calibrated values inside PostgreSQL, and the numpy path for what PostgreSQL
refuses.

:func:`write_part` first counts the values of the version already there for the part's
readings (by primary key over the part's seq range): none → one plain ``INSERT … SELECT``
(``sql``); all → nothing to do (``all-present``); some → an anti-join insert with
``ON CONFLICT DO NOTHING`` (``sql-skip-existing``), also used when a plain insert collides
with a value written meanwhile at ingest. Where PostgreSQL raises on the arithmetic (float
under/overflow, division by zero, where numpy returns ±inf or 0) the part is redone with
:meth:`CalibrationModel.apply` (``numpy``); values outside the range of ``real`` are not
stored.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import psycopg
from psycopg import sql

from luftnett.calibration.apply_db import CalibratedValue, write_calibrated
from luftnett.calibration.model import CalibrationModel
from luftnett.calibration.sql_model import ModelSQL, input_expr, model_sql

__all__ = ["count_needed", "insert_select", "write_part"]

log = logging.getLogger(__name__)

_F32_MAX = float(np.finfo(np.float32).max)
#: errors PostgreSQL raises where numpy returns ±inf or NaN: the part is redone with numpy
_ARITHMETIC = (
    psycopg.errors.NumericValueOutOfRange,
    psycopg.errors.DivisionByZero,
    psycopg.errors.FloatingPointException,
)

# the seqs of the part's first and last reading: two probes of the (device_id, ts) index, not
# a scan of the part (seq grows with ts; where a clock jump breaks that, the count below may
# miss values, and the plain insert then collides and falls back to the skipping one)
_SEQ_EDGES = """
SELECT (SELECT seq FROM readings WHERE device_id = %(d)s AND ts >= %(lo)s AND ts < %(hi)s
        ORDER BY ts LIMIT 1),
       (SELECT seq FROM readings WHERE device_id = %(d)s AND ts >= %(lo)s AND ts < %(hi)s
        ORDER BY ts DESC LIMIT 1)
"""

# a fleet default calibrates the readings of its own sensor model (parameter m; NULL for a
# device's own version: all its readings)
_OF_MODEL = sql.SQL("AND (%(m)s::text IS NULL OR r.sensor_model = %(m)s) ")

# values of the version already there for the part's readings (by primary key, cheaply)
_HAS_VALUES = """
SELECT count(*) FROM calibrated_values
WHERE device_id = %(d)s AND seq BETWEEN %(slo)s AND %(shi)s AND pollutant = %(p)s
  AND version_id = %(v)s AND ts >= %(lo)s AND ts < %(hi)s
"""


def _present(m: ModelSQL) -> sql.Composable:
    """Every input of the model is there (the reading can be calibrated)."""
    inputs = [e for key, (_, e) in zip(m.keys, m.columns, strict=True) if key.startswith("in:")]
    return sql.SQL(" AND ").join(sql.SQL("({}) IS NOT NULL").format(e) for e in inputs)


def insert_select(model: CalibrationModel, skip_existing: bool) -> sql.Composed:
    """The ``INSERT … SELECT`` of one part (parameters d, lo, hi, p, v, m).

    Readings missing an input are left out in the scan; value and uncertainty are computed
    once per row, in the projection (PostgreSQL raises on a float overflow instead of
    returning ±inf, so finite inputs give finite results or an error)."""
    m = model_sql(model, "r")
    cols = sql.SQL(", ").join(
        sql.SQL("{} AS {}").format(e, sql.Identifier(n)) for n, e in m.columns
    )
    skip = sql.SQL(
        " AND NOT EXISTS (SELECT 1 FROM calibrated_values c WHERE c.device_id = r.device_id "
        "AND c.seq = r.seq AND c.pollutant = %(p)s AND c.version_id = %(v)s)"
        if skip_existing else ""
    )  # fmt: skip
    return sql.SQL(
        "INSERT INTO calibrated_values (device_id, seq, pollutant, version_id, ts, value, u) "
        "SELECT device_id, seq, %(p)s, %(v)s, ts, ({value})::real, ({u})::real FROM ("
        "SELECT r.device_id, r.seq, r.ts, {cols} FROM readings r "
        "WHERE r.device_id = %(d)s AND r.ts >= %(lo)s AND r.ts < %(hi)s AND {present}{skip} "
        "{of_model}"
        "OFFSET 0) t{conflict}"
    ).format(value=m.value, u=m.u, cols=cols, skip=skip, present=_present(m), of_model=_OF_MODEL,
             conflict=sql.SQL(" ON CONFLICT DO NOTHING" if skip_existing else ""))  # fmt: skip


def count_needed(model: CalibrationModel) -> sql.Composed:
    """How many readings of a part can be calibrated (parameters d, lo, hi, m)."""
    m = model_sql(model, "r")
    return sql.SQL(
        "SELECT count(*) FROM readings r WHERE r.device_id = %(d)s AND r.ts >= %(lo)s "
        "AND r.ts < %(hi)s {}AND {}"
    ).format(_OF_MODEL, _present(m))


def _numpy_part(
    conn: psycopg.Connection[Any], model: CalibrationModel, params: dict[str, Any]
) -> int:
    """The reference path: read the part's inputs, ``model.apply``, write what is finite."""
    names = list(dict.fromkeys((model.sensor, *model.inputs)))
    cols = sql.SQL(", ").join(input_expr(n, "r") for n in names)
    rows = conn.execute(
        sql.SQL("SELECT r.seq, r.ts, {} FROM readings r WHERE r.device_id = %(d)s "
                "AND r.ts >= %(lo)s AND r.ts < %(hi)s {}ORDER BY r.seq").format(cols, _OF_MODEL),
        params,
    ).fetchall()  # fmt: skip
    if not rows:
        return 0
    arr = {n: np.array([np.nan if r[2 + i] is None else r[2 + i] for r in rows], np.float64)
           for i, n in enumerate(names)}  # fmt: skip
    with np.errstate(all="ignore"):
        out = model.apply(arr[model.sensor], {n: arr[n] for n in model.inputs})
    ok = (np.abs(out.value) <= _F32_MAX) & (np.abs(out.u) <= _F32_MAX)
    values = [
        CalibratedValue(
            params["d"],
            int(rows[k][0]),
            params["p"],
            params["v"],
            rows[k][1],
            float(out.value[k]),
            float(out.u[k]),
        )
        for k in np.flatnonzero(ok).tolist()
    ]
    return write_calibrated(conn, values)


def write_part(
    conn: psycopg.Connection[Any], model: CalibrationModel, params: dict[str, Any]
) -> tuple[int, str]:
    row = conn.execute(_SEQ_EDGES, params).fetchone()
    if row is None or row[0] is None:
        return 0, "sql"  # no readings (any more) in the part
    slo, shi = min(row[0], row[1]), max(row[0], row[1])
    row = conn.execute(_HAS_VALUES, {**params, "slo": slo, "shi": shi}).fetchone()
    have = int(row[0]) if row else 0
    if have:
        row = conn.execute(count_needed(model), params).fetchone()
        if row is not None and int(row[0]) == have:
            return 0, "all-present"  # e.g. the same version activated again
    skip = have > 0
    try:
        with conn.transaction():
            cur = conn.execute(insert_select(model, skip), params)
        return cur.rowcount, "sql-skip-existing" if skip else "sql"
    except psycopg.errors.UniqueViolation:
        # values of this version written meanwhile (at ingest) outside the planned seq range
        with conn.transaction():
            cur = conn.execute(insert_select(model, True), params)
        return cur.rowcount, "sql-skip-existing"
    except _ARITHMETIC as exc:
        why = str(exc).splitlines()[0]
        log.warning("SQL path refused a part, redone with numpy",
                    extra={"device_id": params["d"], "error": why})  # fmt: skip
        with conn.transaction():
            return _numpy_part(conn, model, params), "numpy"
