"""Completeness ledger and device health."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query
from psycopg import errors as pg_errors

from luftnett.api.deps import Conn
from luftnett.api.params import date_in_range
from luftnett.api.routers.devices import device_exists
from luftnett.collector.health import DEFAULT_SILENT_AFTER, HEALTH_SQL, assess
from luftnett.collector.ledger import (
    DEFAULT_LATE_AFTER,
    LEDGER_SQL,
    MAX_DAYS,
    ledger_entries,
    ledger_params,
)
from luftnett.collector.rollups import DayConvention
from luftnett.contracts.mqtt import DEVICE_ID_PATTERN

router = APIRouter(prefix="/api/v1", tags=["ledger"])

#: without a device, a request covers at most this many days (a fleet of 1,000 one-minute
#: devices' day takes ~4 s; docs/benchmarks.md, "Completeness ledger")
FLEET_MAX_DAYS = 7
#: the database's limit on one ledger query
STATEMENT_TIMEOUT_MS = 60_000


@router.get(
    "/ledger",
    summary="Completeness ledger per device and day",
    description="Readings sent (from the device's sequence numbers), received, stored, "
    "duplicates dropped, late, and the missing seq ranges, per device and day: `day` (default "
    "today) or, with `days`, the `days` days ending with `day` (oldest first; up to 92 days "
    "for one device, 7 for the whole fleet). "
    "`day_convention` is `utc+01` (compliance days) or `Europe/Oslo` (display days, 23 or "
    "25 hours at the DST changes); every entry states it and gives its bounds in UTC and "
    "local time. With `device`, an entry for every day, empty days included; without, every "
    "device and day that stored or dropped readings.",
)
async def get_ledger(
    conn: Conn,
    device: Annotated[str | None, Query(pattern=DEVICE_ID_PATTERN)] = None,
    day: Annotated[date | None, Query(description="YYYY-MM-DD; default today")] = None,
    days: Annotated[
        int, Query(ge=1, le=MAX_DAYS, description="how many days, ending with `day`")
    ] = 1,
    day_convention: Annotated[
        str, Query(pattern="^(utc\\+01|Europe/Oslo)$", description="utc+01 or Europe/Oslo")
    ] = "Europe/Oslo",
    late_after_s: Annotated[int, Query(ge=0, le=365 * 86400)] = int(
        DEFAULT_LATE_AFTER.total_seconds()
    ),
) -> dict[str, Any]:
    conv = DayConvention.parse(day_convention)
    last = day or datetime.now(UTC).astimezone(conv.tz).date()
    first = last - timedelta(days=days - 1)
    try:
        date_in_range("day", last)
        date_in_range("the first day (day - days + 1)", first)
    except ValueError as exc:
        raise HTTPException(422, str(exc)) from None
    late_after = timedelta(seconds=late_after_s)
    devices = None if device is None else [device]
    if device is not None:
        await device_exists(conn, device)
    elif days > FLEET_MAX_DAYS:
        raise HTTPException(
            422,
            f"the whole fleet's ledger covers at most {FLEET_MAX_DAYS} days per request; "
            f"name a device for up to {MAX_DAYS}, or ask for the days in turn",
        )
    try:
        async with conn.transaction():
            await conn.execute(f"SET LOCAL statement_timeout = {STATEMENT_TIMEOUT_MS:d}")
            params = ledger_params(first, last, devices, conv, late_after)
            cur = await conn.execute(LEDGER_SQL, params)
            rows = await cur.fetchall()
    except pg_errors.QueryCanceled:
        raise HTTPException(
            503, "the ledger took too long and was cancelled; ask for fewer days or one device"
        ) from None
    entries = ledger_entries(rows, first, last, devices, conv, late_after)
    return {
        "day": last.isoformat(),
        "first_day": first.isoformat(),
        "days": days,
        "day_convention": conv.value,
        "day_convention_note": conv.describe,
        "devices": [e.as_dict() for e in entries],
    }


@router.get(
    "/devices/health",
    summary="Devices that are silent, stuck or faulty",
    description="A device is listed when it has not been heard from for more than "
    "`silent_after_s` seconds, the newest reading of one of its sensors is flagged `stuck`, "
    "`sensor_error` or `clock_suspect`, or readings of it went to quarantine as `seq_reused` "
    "in the last day (its numbering started again), or one of its sensors stopped reporting "
    "while it reports through another (`sensor_silent`, the sensors in `silent_sensors`). "
    "`all=true` lists healthy devices too. Times in UTC and Europe/Oslo.",
)
async def get_device_health(
    conn: Conn,
    silent_after_s: Annotated[int, Query(ge=1, le=365 * 86400)] = int(
        DEFAULT_SILENT_AFTER.total_seconds()
    ),
    include_all: Annotated[bool, Query(alias="all", description="include healthy devices")] = False,
) -> dict[str, Any]:
    cur = await conn.execute(HEALTH_SQL)
    now = datetime.now(UTC)
    report = assess(await cur.fetchall(), now, timedelta(seconds=silent_after_s))
    listed = [h.as_dict() for h in report if include_all or not h.ok]
    return {
        "checked_at": now.isoformat(),
        "silent_after_s": silent_after_s,
        "devices_checked": len(report),
        "unhealthy": sum(not h.ok for h in report),
        "devices": listed,
    }
