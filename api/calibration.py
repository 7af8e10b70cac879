"""Calibrated values beside raw ones, where the calibration tables (migration 0010) exist.

Detected per connection with ``to_regclass``: before the tables exist every calibrated value,
uncertainty and calibration id is NULL and the API says so; afterwards the values come from
``calibrated_current`` (the version in force at each reading's time). Calibration covers the
quantities in :data:`CALIBRATED`; their pollutant codes are those of ``calibration_versions``.
"""

from __future__ import annotations

from typing import Any

from psycopg import AsyncConnection, sql

__all__ = [
    "CALIBRATED",
    "available",
    "cal_columns",
    "cal_joins",
    "cal_joins_by_version",
    "device_calibration",
    "version_param",
]

#: reading column -> pollutant code of the calibration tables
CALIBRATED: dict[str, str] = {"pm25_ugm3": "pm25", "pm10_ugm3": "pm10", "no2_ppb": "no2"}

_DETECT = "SELECT to_regclass('calibrated_current') IS NOT NULL AS ok"

_DEVICE_CAL = """
SELECT v.pollutant, v.version_id, v.kind, v.status, v.created_at, v.model_id
FROM unnest(%(pollutants)s::text[]) AS p(pollutant)
JOIN calibration_versions v
  ON v.version_id = luftnett_active_version(%(device)s, p.pollutant, now())
"""


async def available(conn: AsyncConnection[Any]) -> bool:
    """True when the calibration tables of migration 0010 exist in this database."""
    cur = await conn.execute(_DETECT)
    row = await cur.fetchone()
    if row is None:
        return False
    return bool(row["ok"] if isinstance(row, dict) else row[0])


def cal_joins(on: bool, alias: str = "r") -> sql.Composable:
    """LEFT JOINs of the calibrated value of each calibrated quantity (nothing when off)."""
    if not on:
        return sql.SQL("")
    parts = [
        sql.SQL(
            " LEFT JOIN calibrated_current {c} ON {c}.device_id = {r}.device_id "
            "AND {c}.seq = {r}.seq AND {c}.pollutant = {p}"
        ).format(c=sql.Identifier(f"cal_{q}"), r=sql.Identifier(alias), p=sql.Literal(p))
        for q, p in CALIBRATED.items()
    ]
    return sql.Composed(parts)


def version_param(pollutant: str) -> str:
    """The query parameter of a pollutant's version in :func:`cal_joins_by_version`."""
    return f"v_{pollutant}"


def cal_joins_by_version() -> sql.Composable:
    """LEFT JOINs of one device's calibrated values of known versions per quantity
    (parameters ``%(device)s`` and ``%(v_<pollutant>)s``, an array of the versions in force:
    one per sensor model of the device, or its own; empty when none is): for a stretch of
    time over which the versions in force do not change (``calibration_spans``, see
    api/export.py), the same rows as :func:`cal_joins`, without resolving the spans for every
    reading (which cost ~450 µs a reading on the benchmark data). A reading has values only of
    versions that apply to it, so at most one of them matches. The device is a parameter
    rather than ``r.device_id`` so that the planner can estimate the join and hash the
    device's values instead of probing the index per reading (measured 2x faster for a
    device-year)."""
    parts = [
        sql.SQL(
            " LEFT JOIN calibrated_values {c} ON {c}.device_id = %(device)s "
            "AND {c}.seq = r.seq AND {c}.version_id = ANY(%({v})s::bigint[]) "
            "AND {c}.pollutant = {p}"
        ).format(c=sql.Identifier(f"cal_{q}"), v=sql.SQL(version_param(p)), p=sql.Literal(p))
        for q, p in CALIBRATED.items()
    ]
    return sql.Composed(parts)


def cal_columns(on: bool) -> list[tuple[str, sql.Composable]]:
    """(output name, expression) of calibrated value, uncertainty and version per quantity."""
    out: list[tuple[str, sql.Composable]] = []
    for q in CALIBRATED:
        c = sql.Identifier(f"cal_{q}")
        if on:
            out += [
                (f"{q}_cal", sql.SQL("{}.value").format(c)),
                (f"{q}_u", sql.SQL("{}.u").format(c)),
                (f"{q}_calibration_id", sql.SQL("{}.version_id").format(c)),
            ]
        else:
            out += [
                (f"{q}_cal", sql.SQL("NULL::real")),
                (f"{q}_u", sql.SQL("NULL::real")),
                (f"{q}_calibration_id", sql.SQL("NULL::bigint")),
            ]
    return out


async def device_calibration(
    conn: AsyncConnection[Any], device_id: str, on: bool
) -> dict[str, Any] | None:
    """Version in force now per calibrated quantity, or None without calibration tables."""
    if not on:
        return None
    cur = await conn.execute(
        _DEVICE_CAL, {"pollutants": list(CALIBRATED.values()), "device": device_id}
    )
    rows = await cur.fetchall()
    by_pollutant = {r["pollutant"]: r for r in rows}
    out: dict[str, Any] = {}
    for q, p in CALIBRATED.items():
        r = by_pollutant.get(p)
        out[q] = (
            None
            if r is None
            else {
                "calibration_id": r["version_id"],
                "kind": r["kind"],
                "status": r["status"],
                "model_id": r["model_id"],
                "created_at": r["created_at"].isoformat(),
            }
        )
    return out
