"""Devices and their readings."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated, Any
from zoneinfo import ZoneInfo

from fastapi import APIRouter, HTTPException, Path, Query
from psycopg import sql

from luftnett.api.deps import Conn
from luftnett.contracts.mqtt import DEVICE_ID_PATTERN
from luftnett.contracts.units import QUANTITIES, ReadingFlag
from luftnett.db.schema import READING_META_COLUMNS, VALUE_COLUMNS

router = APIRouter(prefix="/api/v1", tags=["devices"])

OSLO = ZoneInfo("Europe/Oslo")

_DEVICES = """
SELECT d.device_id, d.sensor_model, d.sensor_serial, d.agent_version, d.first_seen, d.last_seen,
       s.site_id, s.name AS site_name, s.site_type, s.lat, s.lon,
       (SELECT count(*) FROM readings r WHERE r.device_id = d.device_id) AS n_readings
FROM devices d
LEFT JOIN deployments dep ON dep.device_id = d.device_id AND dep.valid_to IS NULL
LEFT JOIN sites s ON s.site_id = dep.site_id
ORDER BY d.device_id
"""

_READ_COLS = (*READING_META_COLUMNS, "received_at", *VALUE_COLUMNS, "extra", "flags")
_READINGS = sql.SQL(
    "SELECT {cols} FROM readings WHERE device_id = %(device)s AND ts >= %(start)s "
    "AND ts < %(end)s ORDER BY ts {order}, seq {order} LIMIT %(limit)s"
)


@router.get(
    "/devices",
    summary="List devices",
    description="Every device with its current "
    "deployment (site, type, location) and how many readings it has stored.",
)
async def list_devices(conn: Conn) -> dict[str, Any]:
    cur = await conn.execute(_DEVICES)
    return {"devices": await cur.fetchall()}


def _flag_names(bits: int) -> list[str]:
    return [f.name.lower() for f in ReadingFlag if f.name and bits & f.value]


@router.get(
    "/devices/{device_id}/readings",
    summary="Readings of one device",
    description="Raw readings in a time range [start, end), times in UTC and Europe/Oslo, "
    "flags as a bitmask and by name. Default range: the last 24 hours.",
)
async def device_readings(
    conn: Conn,
    device_id: Annotated[str, Path(pattern=DEVICE_ID_PATTERN)],
    start: Annotated[datetime | None, Query(description="ISO 8601; default end - 24 h")] = None,
    end: Annotated[datetime | None, Query(description="ISO 8601, exclusive; default now")] = None,
    limit: Annotated[int, Query(ge=1, le=100_000)] = 10_000,
    order: Annotated[str, Query(pattern="^(asc|desc)$")] = "asc",
) -> dict[str, Any]:
    for name, value in (("start", start), ("end", end)):
        if value is not None and value.tzinfo is None:
            raise HTTPException(422, f"{name} must carry a time zone, e.g. 2026-01-01T00:00:00Z")
    end = end or datetime.now(UTC)
    start = start or end - timedelta(hours=24)
    if start >= end:
        raise HTTPException(
            422, f"start ({start.isoformat()}) must be before end ({end.isoformat()})"
        )
    exists = await conn.execute("SELECT 1 FROM devices WHERE device_id = %s", (device_id,))
    if await exists.fetchone() is None:
        raise HTTPException(404, f"no device {device_id!r}; GET /api/v1/devices lists them")
    query = _READINGS.format(
        cols=sql.SQL(", ").join(sql.Identifier(c) for c in _READ_COLS),
        order=sql.SQL("DESC" if order == "desc" else "ASC"),
    )
    cur = await conn.execute(
        query, {"device": device_id, "start": start, "end": end, "limit": limit}
    )
    rows = await cur.fetchall()
    out = []
    for r in rows:
        ts: datetime = r.pop("ts")
        values = {c: r.pop(c) for c in VALUE_COLUMNS}
        values.update(r.pop("extra") or {})
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
                "flags": r["flags"],
                "flag_names": _flag_names(r["flags"]),
                "received_at": r["received_at"].astimezone(UTC).isoformat(),
            }
        )
    return {
        "device_id": device_id,
        "start": start.isoformat(),
        "end": end.isoformat(),
        "units": {k: QUANTITIES[k].unit for k in VALUE_COLUMNS},
        "count": len(out),
        "readings": out,
    }
