"""Limit-value profiles and exceedances per calendar year."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Path, Query

from luftnett.api import calibration
from luftnett.api.deps import Conn, Profiles, ReadAccess
from luftnett.api.exceedance import exceedances
from luftnett.api.params import DEVICE_PATH, SITE_PATH, ExceedanceQuery
from luftnett.api.profiles import Profile, ProfileSet
from luftnett.api.queries import Scope
from luftnett.api.routers.devices import device_exists
from luftnett.api.routers.sites import site_scope
from luftnett.errors import ConfigError

__all__ = ["router"]

router = APIRouter(prefix="/api/v1", tags=["exceedances"], dependencies=[ReadAccess])

_DESCRIPTION = (
    "Counts per calendar year (UTC+01:00 days and hours, as the reference network) of values "
    "above each entry of a limit-value profile, against the allowed count, with the "
    "profile's data-capture rules applied: below them the verdict is 'insufficient_data', "
    "never 'not_exceeded'. Microsensor data are indicative: the result is labelled "
    "'indicative – microsensor' and is no statement of legal compliance. NO2 is converted "
    "from ppb to µg/m³ with the factor of the profile data."
)


def _profile(profiles: ProfileSet, profile_id: str) -> Profile:
    try:
        return profiles.get(profile_id)
    except ConfigError as exc:
        raise HTTPException(404, str(exc)) from None


@router.get(
    "/profiles",
    summary="Limit-value profiles",
    description="The profiles exceedances can be computed against, with their sources and "
    "validity rules, and the Norwegian index classes.",
)
async def list_profiles(profiles: Profiles) -> dict[str, Any]:
    return {
        "limits_version": profiles.limits_version,
        "limits_retrieved": profiles.limits_retrieved,
        "indicative_label": profiles.indicative_label,
        "indicative_note": profiles.indicative_note,
        "profiles": [p.summary() for p in profiles.profiles.values()],
    }


@router.get(
    "/profiles/{profile_id}",
    summary="One profile with its values",
    description="Every entry: pollutant, averaging period, value (µg/m³), allowed "
    "exceedances per year, kind, level (WHO), source URL and whether it was verified.",
)
async def get_profile(
    profiles: Profiles, profile_id: Annotated[str, Path(pattern=r"^[a-z0-9-]{1,60}$")]
) -> dict[str, Any]:
    p = _profile(profiles, profile_id)
    return {**p.summary(), "entries": [e.as_dict() for e in p.entries]}


async def _run(
    conn: Conn, profiles: ProfileSet, scope: Scope, q: ExceedanceQuery, what: dict[str, Any]
) -> dict[str, Any]:
    profile = _profile(profiles, q.profile)
    calibrated = q.source == "calibrated"
    if calibrated and not await calibration.available(conn):
        raise HTTPException(409, "no calibration tables in this database yet; use source=raw")
    year = q.year or datetime.now(UTC).year
    out = await exceedances(conn, scope, profile, profiles, year, calibrated=calibrated)
    return {**what, "source": q.source, **out}


@router.get(
    "/devices/{device_id}/exceedances",
    summary="Exceedances of one device",
    description=_DESCRIPTION,
)
async def device_exceedances(
    conn: Conn,
    profiles: Profiles,
    device_id: Annotated[str, Path(pattern=DEVICE_PATH)],
    q: Annotated[ExceedanceQuery, Query()],
) -> dict[str, Any]:
    _profile(profiles, q.profile)
    await device_exists(conn, device_id)
    return await _run(conn, profiles, Scope(devices=(device_id,)), q, {"device_id": device_id})


@router.get(
    "/sites/{site_id}/exceedances",
    summary="Exceedances of one site",
    description=_DESCRIPTION + " A site's series is the mean of its devices while deployed.",
)
async def site_exceedances(
    conn: Conn,
    profiles: Profiles,
    site_id: Annotated[str, Path(pattern=SITE_PATH)],
    q: Annotated[ExceedanceQuery, Query()],
) -> dict[str, Any]:
    _profile(profiles, q.profile)
    scope = await site_scope(conn, site_id)
    return await _run(conn, profiles, scope, q, {"site_id": site_id})
