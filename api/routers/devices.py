"""Devices: registry, health, calibration, and their readings."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Path, Query
from psycopg import sql

from luftnett.api import calibration
from luftnett.api.deps import Conn, ReadAccess
from luftnett.api.params import DEVICE_PATH, ReadingsQuery
from luftnett.api.quality import INVALID_MASK, flag_names
from luftnett.contracts.units import QUANTITIES, ReadingFlag
from luftnett.db.schema import READING_META_COLUMNS, VALUE_COLUMNS
from luftnett.timefmt import LOCAL_TZ as OSLO

__all__ = ["device_exists", "router"]

router = APIRouter(prefix="/api/v1", tags=["devices"], dependencies=[ReadAccess])

#: a device is "online" when its last reading is this recent, "stale" within a day
ONLINE_S, STALE_S = 15 * 60, 24 * 3600

_DEVICES = """
SELECT d.device_id, d.sensor_model, d.sensor_serial, d.agent_version, d.first_seen, d.last_seen,
       s.site_id, s.name AS site_name, s.site_type, s.lat, s.lon,
       dep.deployment_id, dep.valid_from AS deployed_from,
       (SELECT max(r.ts) FROM readings r WHERE r.device_id = d.device_id) AS last_reading,
       (SELECT json_agg(json_build_object(
                   'model', s.sensor_model, 'serial', nullif(s.sensor_serial, ''),
                   'first_ts', s.first_ts, 'last_ts', s.last_ts, 'window_s', s.window_s)
               ORDER BY s.first_ts, s.sensor_model, s.sensor_serial)
        FROM device_sensors s WHERE s.device_id = d.device_id) AS sensors
FROM devices d
LEFT JOIN deployments dep ON dep.device_id = d.device_id AND dep.valid_to IS NULL
LEFT JOIN sites s ON s.site_id = dep.site_id
{where}
ORDER BY d.device_id
"""

_READ_COLS = (*READING_META_COLUMNS, "received_at", *VALUE_COLUMNS, "extra", "flags")
#: the stored flags plus ANNOTATED_INVALID inside an active invalidating staff annotation
#: (the rule of the readings_effective view, which the rollups and statistics use)
_EFFECTIVE_FLAGS = sql.SQL(
    "r.flags | CASE WHEN EXISTS (SELECT 1 FROM annotations a WHERE a.device_id = r.device_id "
    "AND a.invalidates AND a.revoked_at IS NULL AND r.ts >= a.starts_at AND r.ts < a.ends_at) "
    "THEN {} ELSE 0 END AS effective_flags"
).format(sql.Literal(int(ReadingFlag.ANNOTATED_INVALID)))
_READINGS = (
    "SELECT {cols} FROM readings r {joins} WHERE r.device_id = %(device)s "
    "AND r.ts >= %(start)s AND r.ts < %(end)s ORDER BY r.ts {order}, r.seq {order} "
    "LIMIT %(limit)s"
)


async def device_exists(conn: Conn, device_id: str) -> None:
    """404 naming the list endpoint when ``device_id`` is not registered."""
    cur = await conn.execute("SELECT 1 FROM devices WHERE device_id = %s", (device_id,))
    if await cur.fetchone() is None:
        raise HTTPException(404, f"no device {device_id!r}; GET /api/v1/devices lists them")


def _health(last: datetime | None, now: datetime) -> dict[str, Any]:
    if last is None:
        return {"status": "no_data", "last_reading": None, "seconds_since": None}
    age = (now - last).total_seconds()
    status = "online" if age <= ONLINE_S else "stale" if age <= STALE_S else "offline"
    return {
        "status": status,
        "last_reading": last.astimezone(UTC).isoformat(),
        "last_reading_local": last.astimezone(OSLO).isoformat(),
        "seconds_since": round(age),
    }


def _sensor(x: dict[str, Any]) -> dict[str, Any]:
    """A sensor the device has reported through, its first and last reading in UTC and local
    time (a box with a PM sensor and the NO2 module has two)."""
    out: dict[str, Any] = {"model": x["model"], "serial": x["serial"], "window_s": x["window_s"]}
    for key, name in (("first_ts", "first_reading"), ("last_ts", "last_reading")):
        t = datetime.fromisoformat(x[key])
        out[name] = t.astimezone(UTC).isoformat()
        out[f"{name}_local"] = t.astimezone(OSLO).isoformat()
    return out


async def _device_rows(conn: Conn, device_id: str | None) -> list[dict[str, Any]]:
    where = sql.SQL("WHERE d.device_id = %(device)s" if device_id else "")
    cur = await conn.execute(sql.SQL(_DEVICES).format(where=where), {"device": device_id})
    rows = await cur.fetchall()
    cal_on = await calibration.available(conn)
    now = datetime.now(UTC)
    out = []
    for r in rows:
        out.append(
            {
                "device_id": r["device_id"],
                "sensor_model": r["sensor_model"],
                "sensor_serial": r["sensor_serial"],
                "agent_version": r["agent_version"],
                "first_seen": r["first_seen"].isoformat(),
                "last_seen": r["last_seen"].isoformat(),
                "site": None
                if r["site_id"] is None
                else {
                    "site_id": r["site_id"],
                    "name": r["site_name"],
                    "site_type": r["site_type"],
                    "lat": r["lat"],
                    "lon": r["lon"],
                    "deployment_id": r["deployment_id"],
                    "deployed_from": r["deployed_from"].isoformat(),
                },
                "sensors": [_sensor(x) for x in r["sensors"] or []],
                "health": _health(r["last_reading"], now),
                "calibration": await calibration.device_calibration(conn, r["device_id"], cal_on),
            }
        )
    return out


@router.get(
    "/devices",
    summary="List devices",
    description="Every device with its current deployment (site, type, location), sensor "
    "model (the box's main sensor: a PM sensor before the NO2 module before a temperature/RH "
    "companion), `sensors` (every sensor it has reported through, with its first and last "
    "reading), health (last reading; online ≤ 15 min, stale ≤ 24 h, else offline) and the "
    "calibration version in force per pollutant (null until calibration tables exist).",
)
async def list_devices(conn: Conn) -> dict[str, Any]:
    return {"devices": await _device_rows(conn, None)}


@router.get(
    "/devices/{device_id}",
    summary="One device",
    description="As one item of GET /devices; 404 when the device is not registered.",
)
async def get_device(
    conn: Conn, device_id: Annotated[str, Path(pattern=DEVICE_PATH)]
) -> dict[str, Any]:
    rows = await _device_rows(conn, device_id)
    if not rows:
        raise HTTPException(404, f"no device {device_id!r}; GET /api/v1/devices lists them")
    return rows[0]


@router.get(
    "/devices/{device_id}/readings",
    summary="Readings of one device",
    description="Readings in a time range [start, end): raw values, calibrated values with "
    "their standard uncertainty and calibration id (null without calibration), times in UTC "
    "and Europe/Oslo, flags as a bit mask and by name, and `valid` (no invalidating flag). "
    "`flags` include annotated_invalid (bit 10) while an active invalidating staff annotation "
    "covers the reading; `stored_flags` are the bits stored with it. "
    "Default range: the last 24 hours. At most `limit` readings: when the range holds more, "
    "`truncated` is true and `next_start`/`next_end` give the rest's range. For more rows use "
    "/api/v1/downloads.",
)
async def device_readings(
    conn: Conn,
    device_id: Annotated[str, Path(pattern=DEVICE_PATH)],
    q: Annotated[ReadingsQuery, Query()],
) -> dict[str, Any]:
    start, end = q.bounds()
    await device_exists(conn, device_id)
    cal_on = await calibration.available(conn)
    cal_cols = calibration.cal_columns(cal_on)
    cols = [sql.SQL("r.{}").format(sql.Identifier(c)) for c in _READ_COLS] + [
        sql.SQL("{} AS {}").format(expr, sql.Identifier(name)) for name, expr in cal_cols
    ]
    cols.append(_EFFECTIVE_FLAGS)
    query = sql.SQL(_READINGS).format(
        cols=sql.SQL(", ").join(cols),
        joins=calibration.cal_joins(cal_on),
        order=sql.SQL("DESC" if q.order == "desc" else "ASC"),
    )
    cur = await conn.execute(  # one row more than asked: is there more?
        query, {"device": device_id, "start": start, "end": end, "limit": q.limit + 1}
    )
    rows = await cur.fetchall()
    truncated = len(rows) > q.limit
    out = []
    for r in rows[: q.limit]:
        ts: datetime = r["ts"]
        values = {c: r[c] for c in VALUE_COLUMNS}
        values.update(r["extra"] or {})
        out.append(
            {
                "seq": r["seq"],
                "ts": ts.astimezone(UTC).isoformat(),
                "ts_local": ts.astimezone(OSLO).isoformat(),
                "window_s": r["window_s"],
                "n_samples": r["n_samples"],
                "sensor_model": r["sensor_model"],
                "sensor_serial": r["sensor_serial"],
                "values": {k: v for k, v in values.items() if v is not None},
                "calibrated": {k: r[f"{k}_cal"] for k in calibration.CALIBRATED},
                "uncertainty": {k: r[f"{k}_u"] for k in calibration.CALIBRATED},
                "calibration_id": {k: r[f"{k}_calibration_id"] for k in calibration.CALIBRATED},
                "flags": r["effective_flags"],
                "flag_names": flag_names(r["effective_flags"]),
                "stored_flags": r["flags"],
                "valid": not (r["effective_flags"] & INVALID_MASK),
                "received_at": r["received_at"].astimezone(UTC).isoformat(),
            }
        )
    return {
        "device_id": device_id,
        "start": start.isoformat(),
        "end": end.isoformat(),
        "units": {k: QUANTITIES[k].unit for k in VALUE_COLUMNS},
        "calibration_available": cal_on,
        "count": len(out),
        "truncated": truncated,
        **(_next_page(q.order, rows[q.limit - 1]["ts"], start, end) if truncated else {}),
        "readings": out,
    }


def _next_page(order: str, last: datetime, start: datetime, end: datetime) -> dict[str, str]:
    """Where the rest of a truncated answer lies: the range from the last reading returned
    on, which includes it (and every reading stamped at its time: deduplicate on seq)."""
    if order == "desc":  # end is exclusive: just after the last (oldest) time returned
        a, b = start, last + timedelta(microseconds=1)
    else:
        a, b = last, end
    a_z, b_z = (t.astimezone(UTC).isoformat().replace("+00:00", "Z") for t in (a, b))
    return {
        "next_start": a_z,
        "next_end": b_z,
        "note": f"more readings than limit in this range: ask again with start={a_z} and "
        f"end={b_z} (its first readings repeat the last ones here: deduplicate on seq), raise "
        "limit (at most 100,000), or use /api/v1/downloads",
    }
