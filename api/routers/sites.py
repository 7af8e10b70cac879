"""Sites and deployments: where devices measure. Creating them needs an API key."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, HTTPException, Path
from psycopg import errors as pg_errors
from psycopg import sql
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from luftnett.api.deps import ApiKey, Conn, ReadAccess
from luftnett.api.params import DEVICE_PATH, SITE_PATH, AreaQuery
from luftnett.api.queries import Scope

__all__ = ["resolve_area", "router", "site_scope"]

router = APIRouter(prefix="/api/v1", tags=["sites"])

SiteType = Literal[
    "traffic",
    "background",
    "industrial",
    "school",
    "kindergarten",
    "care-home",
    "residential",
    "reference",
    "unknown",
]

_SITES = """
SELECT s.site_id, s.name, s.site_type, s.lat, s.lon, s.created_at,
       array_remove(array_agg(dep.device_id ORDER BY dep.device_id), NULL) AS devices
FROM sites s
LEFT JOIN deployments dep ON dep.site_id = s.site_id AND dep.valid_to IS NULL
{where}
GROUP BY s.site_id ORDER BY s.site_id
"""
_DEPLOYMENTS = """
SELECT deployment_id, site_id, device_id, valid_from, valid_to, note FROM deployments
WHERE (%(site)s::text IS NULL OR site_id = %(site)s)
  AND (%(device)s::text IS NULL OR device_id = %(device)s)
ORDER BY site_id, valid_from
"""
_AREA_DEVICES = """
SELECT s.site_id, array_remove(array_agg(DISTINCT dep.device_id), NULL) AS devices
FROM sites s LEFT JOIN deployments dep ON dep.site_id = s.site_id
WHERE (cardinality(%(sites)s::text[]) = 0 OR s.site_id = ANY(%(sites)s))
  AND (cardinality(%(types)s::text[]) = 0 OR s.site_type = ANY(%(types)s))
  AND (%(bbox)s::float8[] IS NULL OR (
       s.lon BETWEEN (%(bbox)s::float8[])[1] AND (%(bbox)s::float8[])[3]
       AND s.lat BETWEEN (%(bbox)s::float8[])[2] AND (%(bbox)s::float8[])[4]))
GROUP BY s.site_id ORDER BY s.site_id
"""


def _site(r: dict[str, Any]) -> dict[str, Any]:
    return {
        "site_id": r["site_id"],
        "name": r["name"],
        "site_type": r["site_type"],
        "lat": r["lat"],
        "lon": r["lon"],
        "created_at": r["created_at"].isoformat(),
        "devices": r["devices"],
    }


async def resolve_area(conn: Conn, area: AreaQuery) -> tuple[Scope, list[str]]:
    """The sites matching ``area`` and every device ever deployed at them."""
    bbox = area.bbox_values()
    cur = await conn.execute(
        _AREA_DEVICES,
        {"sites": area.site, "types": area.site_type, "bbox": list(bbox) if bbox else None},
    )
    rows = await cur.fetchall()
    found = {r["site_id"] for r in rows}
    missing = [s for s in area.site if s not in found]
    if missing:
        raise HTTPException(404, f"no site {missing[0]!r}; GET /api/v1/sites lists them")
    if not rows:
        raise HTTPException(
            404, "no site matches this area (site, site_type, bbox); GET /api/v1/sites lists them"
        )
    devices = sorted({d for r in rows for d in r["devices"]})
    return Scope(devices=tuple(devices), sites=tuple(sorted(found))), sorted(found)


async def site_scope(conn: Conn, site_id: str) -> Scope:
    scope, _ = await resolve_area(conn, AreaQuery(site=[site_id]))
    return scope


@router.get(
    "/sites",
    summary="List sites",
    description="Measuring locations with type, WGS84 position and the devices deployed now.",
    dependencies=[ReadAccess],
)
async def list_sites(conn: Conn) -> dict[str, Any]:
    cur = await conn.execute(_SITES.format(where=""))
    return {"sites": [_site(r) for r in await cur.fetchall()]}


@router.get(
    "/sites/{site_id}",
    summary="One site",
    description="A site with its deployment history (which device measured there, when).",
    dependencies=[ReadAccess],
)
async def get_site(conn: Conn, site_id: Annotated[str, Path(pattern=SITE_PATH)]) -> dict[str, Any]:
    cur = await conn.execute(_SITES.format(where="WHERE s.site_id = %(site)s"), {"site": site_id})
    row = await cur.fetchone()
    if row is None:
        raise HTTPException(404, f"no site {site_id!r}; GET /api/v1/sites lists them")
    cur = await conn.execute(_DEPLOYMENTS, {"site": site_id, "device": None})
    out = _site(row)
    out["deployments"] = [_deployment(d) for d in await cur.fetchall()]
    return out


class SiteIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    site_id: str = Field(pattern=SITE_PATH, description="a-z, 0-9 and '-', 2-60 characters")
    name: str = Field(min_length=1, max_length=200)
    site_type: SiteType = "unknown"
    lat: float | None = Field(default=None, ge=-90, le=90)
    lon: float | None = Field(default=None, ge=-180, le=180)


class DeploymentIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    site_id: str = Field(pattern=SITE_PATH)
    device_id: str = Field(pattern=DEVICE_PATH)
    valid_from: AwareDatetime | None = Field(default=None, description="default now")
    note: str | None = Field(default=None, max_length=500)


def _deployment(d: dict[str, Any]) -> dict[str, Any]:
    return {
        "deployment_id": d["deployment_id"],
        "site_id": d["site_id"],
        "device_id": d["device_id"],
        "valid_from": d["valid_from"].isoformat(),
        "valid_to": None if d["valid_to"] is None else d["valid_to"].isoformat(),
        "note": d["note"],
    }


@router.post(
    "/sites",
    status_code=201,
    summary="Create a site (API key)",
    description="Registers a measuring location. 409 when the site id exists.",
    dependencies=[ApiKey],
)
async def create_site(conn: Conn, site: SiteIn) -> dict[str, Any]:
    if "\x00" in site.name:
        raise HTTPException(422, "name must not contain NUL characters")
    try:
        cur = await conn.execute(
            "INSERT INTO sites (site_id, name, site_type, lat, lon) VALUES "
            "(%(site_id)s, %(name)s, %(site_type)s, %(lat)s, %(lon)s) RETURNING site_id, name, "
            "site_type, lat, lon, created_at, ARRAY[]::text[] AS devices",
            site.model_dump(),
        )
    except pg_errors.UniqueViolation:
        raise HTTPException(409, f"site {site.site_id!r} exists already") from None
    row = await cur.fetchone()
    assert row is not None
    return _site(row)


@router.get(
    "/deployments",
    summary="List deployments",
    description="Which device measured at which site, from valid_from to valid_to (null: now).",
    dependencies=[ReadAccess],
)
async def list_deployments(conn: Conn) -> dict[str, Any]:
    cur = await conn.execute(_DEPLOYMENTS, {"site": None, "device": None})
    return {"deployments": [_deployment(d) for d in await cur.fetchall()]}


@router.post(
    "/deployments",
    status_code=201,
    summary="Deploy a device at a site (API key)",
    description="Ends the device's open deployment at valid_from and opens a new one. The "
    "site and the device must exist (404 otherwise).",
    dependencies=[ApiKey],
)
async def create_deployment(conn: Conn, dep: DeploymentIn) -> dict[str, Any]:
    if dep.note is not None and "\x00" in dep.note:
        raise HTTPException(422, "note must not contain NUL characters")
    start = dep.valid_from or datetime.now(UTC)
    async with conn.transaction():
        for table, col, value in (
            ("sites", "site_id", dep.site_id),
            ("devices", "device_id", dep.device_id),
        ):
            cur = await conn.execute(
                sql.SQL("SELECT 1 FROM {} WHERE {} = %s").format(
                    sql.Identifier(table), sql.Identifier(col)
                ),
                (value,),
            )
            if await cur.fetchone() is None:
                raise HTTPException(404, f"no {col[:-3]} {value!r}; create it first")
        cur = await conn.execute(
            "SELECT valid_from FROM deployments WHERE device_id = %s AND valid_to IS NULL",
            (dep.device_id,),
        )
        open_row = await cur.fetchone()
        if open_row is not None and open_row["valid_from"] >= start:
            raise HTTPException(
                409,
                f"device {dep.device_id!r} has an open deployment from "
                f"{open_row['valid_from'].isoformat()}; valid_from must be later",
            )
        await conn.execute(
            "UPDATE deployments SET valid_to = %s WHERE device_id = %s AND valid_to IS NULL",
            (start, dep.device_id),
        )
        cur = await conn.execute(
            "INSERT INTO deployments (site_id, device_id, valid_from, note) "
            "VALUES (%s, %s, %s, %s) RETURNING *",
            (dep.site_id, dep.device_id, start, dep.note),
        )
        row = await cur.fetchone()
    assert row is not None
    return _deployment(row)
