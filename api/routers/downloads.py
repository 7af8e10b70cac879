"""Researcher downloads: CSV (long, wide, openair) and Parquet, streamed, with metadata."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta
from typing import Annotated, Any, ClassVar, Literal

from fastapi import APIRouter, HTTPException, Query, Request
from fastapi.responses import StreamingResponse
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, field_validator

from luftnett import __version__
from luftnett.api import calibration, export, hourly_export
from luftnett.api.deps import Conn, Profiles, ReadAccess, SettingsDep
from luftnett.api.params import DEVICE_PATH, SITE_PATH, TimeRange, date_in_range
from luftnett.api.profiles import ProfileSet
from luftnett.api.quality import FLAG_BITS, INVALID_MASK, flag_names
from luftnett.api.routers.annotations import annotations_of, public_annotation
from luftnett.contracts.units import FLAGS_VERSION
from luftnett.publish.schema import POLLUTANTS

__all__ = ["DownloadQuery", "HourlyQuery", "router"]

router = APIRouter(prefix="/api/v1/downloads", tags=["downloads"], dependencies=[ReadAccess])

LICENCE = "CC BY 4.0 (https://creativecommons.org/licenses/by/4.0/)"
CITATION = "luftnett air-quality microsensor network, data downloaded {date} from {url}"


class DownloadQuery(TimeRange):
    model_config = ConfigDict(extra="forbid")
    default_span: ClassVar[timedelta] = timedelta(days=7)

    device: list[str] = Field(default_factory=list, description="repeatable; default all devices")
    site: list[str] = Field(
        default_factory=list,
        description="repeatable: the readings taken while a device was deployed at these sites "
        "(with device: those devices' readings too)",
    )
    start: AwareDatetime | None = Field(default=None, description="ISO 8601; default end - 7 days")
    end: AwareDatetime | None = Field(default=None, description="ISO 8601, exclusive; default now")
    shape: Literal["wide", "long", "openair"] = Field(
        default="wide", description="wide: a column per quantity; long: tidy; openair: for R"
    )
    valid_only: bool = Field(
        default=False, description="leave out readings with invalidating flags"
    )

    _d = field_validator("device")(lambda v: _check_devices(v))
    _s = field_validator("site")(lambda v: _check_sites(v))


def _check_devices(v: list[str]) -> list[str]:
    for d in v:
        if not re.match(DEVICE_PATH, d):
            raise ValueError(f"device id {d[:40]!r} is not valid: use a-z, 0-9 and '-'")
    return v


def _check_sites(v: list[str]) -> list[str]:
    for s in v:
        if not re.match(SITE_PATH, s):
            raise ValueError(f"site id {s[:60]!r} is not valid: use a-z, 0-9 and '-'")
    return v


async def _devices(conn: Conn, q: DownloadQuery | HourlyQuery) -> list[str]:
    if not q.device and not q.site:
        cur = await conn.execute("SELECT device_id FROM devices ORDER BY device_id")
        return [r["device_id"] for r in await cur.fetchall()]
    out: set[str] = set()
    if q.device:
        cur = await conn.execute(
            "SELECT device_id FROM devices WHERE device_id = ANY(%s)", (q.device,)
        )
        found = {r["device_id"] for r in await cur.fetchall()}
        missing = [d for d in q.device if d not in found]
        if missing:
            raise HTTPException(404, f"no device {missing[0]!r}; GET /api/v1/devices lists them")
        out |= found
    if q.site:
        cur = await conn.execute(
            "SELECT s.site_id, array_remove(array_agg(DISTINCT d.device_id), NULL) AS devices "
            "FROM sites s LEFT JOIN deployments d USING (site_id) WHERE s.site_id = ANY(%s) "
            "GROUP BY s.site_id",
            (q.site,),
        )
        rows = await cur.fetchall()
        missing = sorted(set(q.site) - {r["site_id"] for r in rows})
        if missing:
            raise HTTPException(404, f"no site {missing[0]!r}; GET /api/v1/sites lists them")
        for r in rows:
            out |= set(r["devices"])
    return sorted(out)


#: at most this many days per hourly download (a year and a leap day)
HOURLY_MAX_DAYS = 366


class HourlyQuery(BaseModel):
    """Which hours: devices or sites, UTC days, pollutants."""

    model_config = ConfigDict(extra="forbid")

    device: list[str] = Field(default_factory=list, description="repeatable; default all devices")
    site: list[str] = Field(
        default_factory=list,
        description="repeatable: the hours a device was deployed at these sites (with device: "
        "those devices' hours too)",
    )
    start: date | None = Field(
        default=None, description="first UTC day (YYYY-MM-DD); default 6 days before end"
    )
    end: date | None = Field(
        default=None, description="last UTC day included (YYYY-MM-DD); default today (UTC)"
    )
    pollutant: list[Literal["pm1", "pm25", "pm10", "no2"]] = Field(
        default_factory=list, description="repeatable: pm1, pm25, pm10, no2; default all"
    )

    _d = field_validator("device")(lambda v: _check_devices(v))
    _s = field_validator("site")(lambda v: _check_sites(v))

    @field_validator("start", "end")
    @classmethod
    def _dates(cls, v: date | None) -> date | None:
        return None if v is None else date_in_range("dates", v)

    def days(self) -> tuple[date, date]:
        """[first, last] UTC days, checked: in order, at most HOURLY_MAX_DAYS."""
        last = self.end or datetime.now(UTC).date()
        first = self.start or last - timedelta(days=6)
        if first > last:
            raise ValueError(f"start ({first}) must not be after end ({last})")
        if (n := (last - first).days + 1) > HOURLY_MAX_DAYS:
            raise ValueError(
                f"{n} days asked for; at most {HOURLY_MAX_DAYS} per request: ask a year at a "
                "time, or read the open-data archive (luftnett publish; GET /api/v1/catalogue)"
            )
        return first, last


def _citation(request: Request) -> str:
    """How to cite what this request downloads (today's date, this server)."""
    today = datetime.now(UTC).date().isoformat()
    return CITATION.format(date=today, url=str(request.base_url).rstrip("/"))


def _no2_factor(profiles: ProfileSet) -> float:
    return profiles.factor_to_ugm3.get("no2_ppb", 1.0)


async def _metadata(
    conn: Conn, request: Request, profiles: ProfileSet, q: DownloadQuery, devices: list[str]
) -> dict[str, Any]:
    start, end = q.bounds()
    cal_on = await calibration.available(conn)
    cols = export.columns(q.shape, cal_on, _no2_factor(profiles))
    versions: list[dict[str, Any]] = []
    if cal_on:
        # each version with what it is: the fitted model (family, coefficients, features:
        # a fleet default may be the identity), its metrics and where it was trained
        cur = await conn.execute(
            "SELECT v.version_id, v.device_id, v.sensor_model, v.pollutant, v.kind, "
            "v.model_id, v.status, v.created_at, v.model, v.metrics, v.reference_station_id, "
            "v.trained_from, v.trained_to FROM calibration_versions v WHERE v.version_id IN ("
            "SELECT DISTINCT c.version_id FROM calibrated_values c WHERE c.device_id = ANY(%s) "
            "AND c.ts >= %s AND c.ts < %s) ORDER BY v.version_id",
            (devices, start, end),
        )
        times = ("created_at", "trained_from", "trained_to")
        versions = [
            {k: (v.isoformat() if k in times and v is not None else v) for k, v in r.items()}
            for r in await cur.fetchall()
        ]
    found = await annotations_of(conn, devices, start, end)
    found.sort(key=lambda r: (r["device_id"], r["starts_at"], r["annotation_id"]))
    notes = [public_annotation(r, names=False) for r in found]
    return {
        "title": "luftnett microsensor readings",
        "generated_at": datetime.now(UTC).isoformat(),
        "software": f"luftnett {__version__}",
        "licence": LICENCE,
        "citation": _citation(request),
        "query": {
            "devices": devices,
            "start": start.isoformat(),
            "end": end.isoformat(),
            "shape": q.shape,
            "valid_only": q.valid_only,
        },
        "time": "ts/date is the end of each reading's averaging window, in UTC. Aggregates of "
        "the API use calendar days in utc+01 (compliance, as Norwegian reference stations) or "
        "Europe/Oslo (display); the downloads are not aggregated.",
        "day_convention": {
            "utc+01": "days 00-24 at UTC+01:00 all year (compliance statistics)",
            "Europe/Oslo": "civil days in Norway, 23/25 h at DST changes (display)",
        },
        "indicative": profiles.indicative_label,
        "indicative_note": profiles.indicative_note,
        "calibration_available": cal_on,
        "calibration_versions": versions,
        "no2_ppb_to_ugm3": _no2_factor(profiles),
        "flags": {
            "registry_version": FLAGS_VERSION,
            "bits": FLAG_BITS,
            "invalidating": flag_names(INVALID_MASK),
            "invalidating_mask": INVALID_MASK,
        },
        "annotations": notes,
        "annotations_note": "Staff annotations of the devices' periods within the query "
        "(maintenance, roadworks, fireworks, fog, other), revoked ones included (active false). "
        "While an annotation with invalidates true is active, the readings in [starts_at, "
        "ends_at) carry annotated_invalid in flags and are not valid.",
        "columns": [
            {"name": c.name, "type": c.arrow, "unit": c.unit, "description": c.description}
            for c in cols
        ],
        "missing_values": "empty field (CSV), null (Parquet)",
    }


@router.get(
    "/metadata",
    summary="Metadata of a download",
    description="Licence, citation, calibration versions used, the column dictionary with "
    "units, the flag bits, time and day conventions, and the 'indicative measurements' "
    "note, for the same parameters as the data download.",
)
async def download_metadata(
    conn: Conn, request: Request, profiles: Profiles, q: Annotated[DownloadQuery, Query()]
) -> dict[str, Any]:
    devices = await _devices(conn, q)
    return await _metadata(conn, request, profiles, q, devices)


async def _prepare(
    conn: Conn, profiles: ProfileSet, q: DownloadQuery, parquet: bool
) -> tuple[export.Queries, list[export.Segment], list[export.Column]]:
    devices = await _devices(conn, q)
    start, end = q.bounds()
    cal_on = await calibration.available(conn)
    factor = _no2_factor(profiles)
    cols = export.columns(q.shape, False, factor)
    queries = export.Queries(export.select(q.shape, cols, False, q.valid_only, parquet))
    if cal_on:
        with_cal = export.columns(q.shape, True, factor)
        queries = export.Queries(
            queries.plain, export.select(q.shape, with_cal, True, q.valid_only, parquet)
        )
    segs = await export.segments(conn, devices, start, end, cal_on)
    if q.site:  # a site's readings are those taken while a device stood there
        named, sites = set(q.device), set(q.site)
        segs = [g for g in segs if g.device_id in named or g.site_id in sites]
    return queries, segs, cols


def _filename(q: DownloadQuery, ext: str) -> str:
    start, end = q.bounds()
    return f"luftnett-{q.shape}-{start:%Y%m%d}-{end:%Y%m%d}.{ext}"


@router.get(
    "/readings.csv",
    summary="Readings as CSV (streamed, no row cap)",
    description="UTF-8 CSV with a header line, comma-separated, empty fields for missing "
    "values; pandas.read_csv and R read.csv read it without options. Shapes: wide, long "
    "(tidy) and openair. The column dictionary is at /api/v1/downloads/metadata.",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/csv": {}}}},
)
async def readings_csv(
    request: Request, conn: Conn, profiles: Profiles, q: Annotated[DownloadQuery, Query()]
) -> StreamingResponse:
    query, segs, _ = await _prepare(conn, profiles, q, parquet=False)
    return StreamingResponse(
        export.stream_csv(request.app.state.pool, query, segs),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{_filename(q, "csv")}"'},
    )


@router.get(
    "/readings.parquet",
    summary="Readings as Parquet (streamed, no row cap)",
    description="Apache Parquet (zstd), written one row group at a time while streaming; "
    "timestamps are UTC, units are in each field's metadata, and the file metadata carries "
    "licence, citation and the indicative note. Same shapes as the CSV.",
    response_class=StreamingResponse,
    responses={200: {"content": {"application/vnd.apache.parquet": {}}}},
)
async def readings_parquet(
    request: Request, conn: Conn, profiles: Profiles, q: Annotated[DownloadQuery, Query()]
) -> StreamingResponse:
    query, segs, cols = await _prepare(conn, profiles, q, parquet=True)
    meta = {
        "licence": LICENCE,
        "citation": _citation(request),
        "indicative": profiles.indicative_note,
        "source": f"luftnett {__version__}",
    }
    return StreamingResponse(
        export.stream_parquet(request.app.state.pool, query, segs, cols, meta),
        media_type="application/vnd.apache.parquet",
        headers={"Content-Disposition": f'attachment; filename="{_filename(q, "parquet")}"'},
    )


async def _hourly(
    request: Request, conn: Conn, settings: Any, q: HourlyQuery, fmt: str
) -> StreamingResponse:
    try:
        first, last = q.days()
    except ValueError as exc:
        raise HTTPException(422, str(exc)) from None
    devices = await _devices(conn, q)
    codes: list[str] = list(dict.fromkeys(q.pollutant)) or list(POLLUTANTS.values())
    meta = {
        "licence": LICENCE,
        "citation": _citation(request),
        "source": f"luftnett {__version__}",
        "time": "hour_start: start of the UTC hour; hour_start_local: the same instant as "
        f"wall-clock time in {settings.publish.timezone}",
    }
    body = hourly_export.stream_hourly(
        request.app.state.database_url,
        settings.publish.timezone,
        first,
        last + timedelta(days=1),  # the days [first, last]
        devices,
        codes,
        fmt,
        meta,
        hourly_export.Only(set(q.device), set(q.site)) if q.site else None,
    )
    name = f"luftnett-hourly-{first:%Y%m%d}-{last:%Y%m%d}.{fmt}"
    media = "text/csv; charset=utf-8" if fmt == "csv" else "application/vnd.apache.parquet"
    return StreamingResponse(
        body, media_type=media, headers={"Content-Disposition": f'attachment; filename="{name}"'}
    )


_HOURLY_TEXT = (
    "Hourly means per device and pollutant from the collector's rollups: the open-data "
    "archive's `hourly` dataset (the same code writes both; its columns are in the catalogue "
    "record GET /api/v1/catalogue/hourly), with `pollutant` as a column: count, mean, min, "
    "max, coverage and `valid` (>= 75 % of the expected readings), calibrated mean and its "
    "uncertainty, site at the hour. Hours are UTC clock hours; `start`/`end` are UTC days, at "
    f"most {HOURLY_MAX_DAYS} per request. Streamed a month at a time."
)


@router.get(
    "/hourly.csv",
    summary="Hourly means as CSV (the archive's hourly dataset)",
    description=_HOURLY_TEXT + " UTF-8 CSV, comma-separated, empty fields for missing values.",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/csv": {}}}},
)
async def hourly_csv(
    request: Request, conn: Conn, settings: SettingsDep, q: Annotated[HourlyQuery, Query()]
) -> StreamingResponse:
    return await _hourly(request, conn, settings, q, "csv")


@router.get(
    "/hourly.parquet",
    summary="Hourly means as Parquet (the archive's hourly dataset)",
    description=_HOURLY_TEXT + " Apache Parquet (zstd), a row group per month; units and "
    "descriptions in each field's metadata, licence and citation in the file's.",
    response_class=StreamingResponse,
    responses={200: {"content": {"application/vnd.apache.parquet": {}}}},
)
async def hourly_parquet(
    request: Request, conn: Conn, settings: SettingsDep, q: Annotated[HourlyQuery, Query()]
) -> StreamingResponse:
    return await _hourly(request, conn, settings, q, "parquet")
