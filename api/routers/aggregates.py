"""Aggregates per device, per site and per area: hourly, daily, monthly, annual."""

from __future__ import annotations

from datetime import UTC, date, datetime, time
from typing import Annotated, Any, Literal

import orjson
from fastapi import APIRouter, HTTPException, Path, Query
from fastapi.responses import JSONResponse, Response

from luftnett.api import calibration
from luftnett.api.deps import Conn, ReadAccess
from luftnett.api.params import DEVICE_PATH, SITE_PATH, AggregateQuery, AreaAggregateQuery
from luftnett.api.quality import INVALID_MASK, flag_names
from luftnett.api.queries import DAY_CONVENTIONS, PERCENTILES, Period, Scope, aggregate_json
from luftnett.api.routers.devices import device_exists
from luftnett.api.routers.sites import resolve_area, site_scope
from luftnett.contracts.units import QUANTITIES

__all__ = ["router", "run_aggregate"]

router = APIRouter(prefix="/api/v1", tags=["aggregates"], dependencies=[ReadAccess])

PeriodName = Literal["hourly", "daily", "monthly", "annual"]
_PERIOD: dict[str, Period] = {
    "hourly": "hour",
    "daily": "day",
    "monthly": "month",
    "annual": "year",
}

_OK: dict[int | str, dict[str, Any]] = {
    200: {"content": {"application/json": {"schema": {"type": "object"}}}}
}

_DESCRIPTION = (
    "Series of {what} with coverage (expected, observed, % complete) and summary statistics "
    "over the valid periods (n, min, quartiles, max, mean, sd, and the 90.4th, 98th, 99th and "
    "99.8th percentiles that limit values use). Readings with an invalidating flag are left "
    "out. An hour is valid with ≥ 75 % of its readings, a day with ≥ 18 valid hours, a month "
    "or year with ≥ min_coverage_pct of its hours. Days, months and years follow "
    "day_convention: utc+01 (compliance statistics, as Norwegian reference stations) or "
    "Europe/Oslo (display; 23 h on 2026-03-29, 25 h on 2026-10-25). Hourly series are UTC "
    "hours from 00:00 UTC of start to 24:00 UTC of end. Values are in the quantity's unit."
)


async def run_aggregate(
    conn: Conn, scope: Scope, period_name: str, q: AggregateQuery, what: dict[str, Any]
) -> Response:
    """The JSON response: the head built here, the rows' array spliced in as PostgreSQL wrote
    it (no Python object per row; see :func:`~luftnett.api.queries.aggregate_json`)."""
    period = _PERIOD[period_name]
    try:
        start, end = q.span(period, datetime.now(UTC).date())
    except ValueError as exc:
        raise HTTPException(422, str(exc)) from None
    calibrated = q.source == "calibrated"
    if calibrated:
        if not await calibration.available(conn):
            raise HTTPException(409, "no calibration tables in this database yet; use source=raw")
        bad = [x for x in q.quantity if x not in calibration.CALIBRATED]
        if bad:
            raise HTTPException(
                422,
                f"{bad[0]} has no calibration; calibrated quantities: "
                + ", ".join(calibration.CALIBRATED),
            )
    first: date | datetime = start
    last: date | datetime = end
    if period == "hour":
        first = datetime.combine(start, time(0), UTC)
        last = datetime.combine(end, time(23), UTC)
    agg = await aggregate_json(
        conn,
        scope,
        q.quantity,
        period,
        q.day_convention,
        first,
        last,
        calibrated=calibrated,
        min_coverage_pct=q.min_coverage_pct,
    )
    body = {
        **what,
        "period": period_name,
        "day_convention": None if period == "hour" else q.day_convention,
        "day_convention_zone": None if period == "hour" else DAY_CONVENTIONS[q.day_convention],
        "source": q.source,
        "computed_from": agg.computed_from,
        "start": agg.start.isoformat(),
        "end": agg.end.isoformat(),
        "units": {x: QUANTITIES[x].unit for x in q.quantity},
        "invalidating_flags": flag_names(INVALID_MASK),
        "percentiles": PERCENTILES,
        "statistics": agg.stats,
    }
    head = orjson.dumps(body)
    return Response(head[:-1] + b',"rows":' + agg.rows_json + b"}", media_type="application/json")


@router.get(
    "/devices/{device_id}/aggregates/{period}",
    summary="Aggregates of one device",
    response_class=JSONResponse,
    responses=_OK,
    description=_DESCRIPTION.format(what="hourly, daily, monthly or annual means of a device"),
)
async def device_aggregates(
    conn: Conn,
    device_id: Annotated[str, Path(pattern=DEVICE_PATH)],
    period: PeriodName,
    q: Annotated[AggregateQuery, Query()],
) -> Response:
    await device_exists(conn, device_id)
    return await run_aggregate(
        conn, Scope(devices=(device_id,)), period, q, {"device_id": device_id}
    )


@router.get(
    "/sites/{site_id}/aggregates/{period}",
    summary="Aggregates of one site",
    response_class=JSONResponse,
    responses=_OK,
    description=_DESCRIPTION.format(
        what="means of a site (its devices' readings while deployed there)"
    ),
)
async def site_aggregates(
    conn: Conn,
    site_id: Annotated[str, Path(pattern=SITE_PATH)],
    period: PeriodName,
    q: Annotated[AggregateQuery, Query()],
) -> Response:
    scope = await site_scope(conn, site_id)
    return await run_aggregate(conn, scope, period, q, {"site_id": site_id})


@router.get(
    "/areas/aggregates/{period}",
    summary="Aggregates of an area",
    response_class=JSONResponse,
    responses=_OK,
    description=_DESCRIPTION.format(
        what="area means (mean over the area's devices of their valid period values); the "
        "area is given by site ids, site types and/or a bounding box"
    ),
)
async def area_aggregates(
    conn: Conn,
    period: PeriodName,
    q: Annotated[AreaAggregateQuery, Query()],
) -> Response:
    scope, sites = await resolve_area(conn, q)
    return await run_aggregate(
        conn, scope, period, q, {"sites": sites, "devices": list(scope.devices)}
    )
