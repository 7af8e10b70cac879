"""Staff annotations over HTTP: list them (open), add and revoke them (API key).

The same rules as ``luftnett annotate`` (:mod:`luftnett.collector.annotations`, the one
implementation): an invalidating annotation takes the period's readings out of the statistics
at query time, revoking puts them back, rollups of the covered hours are recomputed in the same
transaction, and a trigger writes every change to the audit trail with the actor named in the
request. Who made or revoked an annotation, and the audit trail, are shown only to callers with
an API key: staff names are personal data, and read endpoints are open by default.
"""

from __future__ import annotations

import asyncio
import dataclasses
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated, Any

from fastapi import APIRouter, HTTPException, Path, Query, Request
from psycopg import sql
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, field_validator, model_validator

from luftnett.api.deps import ApiKey, Conn, HasKey, ReadAccess
from luftnett.api.params import DEVICE_PATH
from luftnett.api.routers.devices import device_exists
from luftnett.db.schema import (
    ANNOTATION_COLUMNS,
    ANNOTATION_KINDS,
    ANNOTATION_PERSONAL,
    ANNOTATION_TIMES,
)
from luftnett.errors import ConfigError, StorageError
from luftnett.timefmt import utc_local_fields

if TYPE_CHECKING:
    import psycopg

    from luftnett.collector.annotations import Annotation

__all__ = ["annotations_of", "public_annotation", "router"]

router = APIRouter(prefix="/api/v1", tags=["annotations"])

_MIN, _MAX = datetime(1970, 1, 1, tzinfo=UTC), datetime(2100, 1, 1, tzinfo=UTC)
_COLS = sql.SQL(", ").join(map(sql.Identifier, ANNOTATION_COLUMNS))
_LIST = sql.SQL(
    """
SELECT {} FROM annotations
WHERE (%(devices)s::text[] IS NULL OR device_id = ANY(%(devices)s))
  AND (NOT %(active)s OR revoked_at IS NULL)
  AND (%(start)s::timestamptz IS NULL OR ends_at > %(start)s)
  AND (%(end)s::timestamptz IS NULL OR starts_at < %(end)s)
ORDER BY starts_at DESC, annotation_id DESC
LIMIT %(limit)s
"""
).format(_COLS)
_GET = sql.SQL("SELECT {} FROM annotations WHERE annotation_id = %s").format(_COLS)
ID_PATH = Path(ge=1, le=2**63 - 1, description="annotation id")


def public_annotation(row: dict[str, Any], names: bool) -> dict[str, Any]:
    """An annotation as the API gives it: times in UTC and Europe/Oslo, ``active``, and who
    made or revoked it only when ``names`` (the caller holds an API key)."""
    out: dict[str, Any] = {}
    for c in ANNOTATION_COLUMNS:
        v = row[c]
        if c in ANNOTATION_PERSONAL and not names:
            continue
        if c in ANNOTATION_TIMES:
            out.update(utc_local_fields(c, v))
        else:
            out[c] = v
    out["active"] = row["revoked_at"] is None
    return out


def _text(name: str, v: str) -> str:
    if "\x00" in v:
        raise ValueError(f"{name} must not contain NUL characters")
    if not v.strip():
        raise ValueError(f"{name} must not be blank")
    return v.strip()


class AnnotationIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    device_id: str | None = Field(
        default=None, pattern=DEVICE_PATH, description="the annotated device"
    )
    device_ids: list[Annotated[str, Field(pattern=DEVICE_PATH)]] | None = Field(
        default=None,
        min_length=1,
        max_length=10_000,
        description="instead of device_id: several devices, one annotation each, all stored "
        "or none (a town-wide event such as New Year's fireworks)",
    )
    starts_at: AwareDatetime = Field(description="start, ISO 8601 with a time zone")
    ends_at: AwareDatetime = Field(description="end (exclusive), ISO 8601 with a time zone")
    kind: str = Field(description=f"one of {', '.join(ANNOTATION_KINDS)}")
    reason: str = Field(min_length=1, max_length=1000, description="why, in words")
    by: str = Field(min_length=1, max_length=100, description="who annotates")
    invalidates: bool = Field(
        default=False,
        description="leave the period's readings out of statistics (reversible: revoke)",
    )

    _reason = field_validator("reason")(lambda v: _text("reason", v))
    _by = field_validator("by")(lambda v: _text("by", v))

    @field_validator("kind")
    @classmethod
    def _kind(cls, v: str) -> str:
        if v not in ANNOTATION_KINDS:
            raise ValueError(f"unknown kind {v!r}; use one of {', '.join(ANNOTATION_KINDS)}")
        return v

    @model_validator(mode="after")
    def _period(self) -> AnnotationIn:
        if (self.device_id is None) == (self.device_ids is None):
            raise ValueError("give device_id (one device) or device_ids (several), not both")
        for name, t in (("starts_at", self.starts_at), ("ends_at", self.ends_at)):
            if not _MIN <= t < _MAX:
                raise ValueError(f"{name} must lie between 1970 and 2100 (got {t.isoformat()})")
        if self.ends_at <= self.starts_at:
            raise ValueError(
                f"ends_at ({self.ends_at.isoformat()}) must be after starts_at "
                f"({self.starts_at.isoformat()})"
            )
        return self

    def devices(self) -> list[str]:
        return (
            [self.device_id] if self.device_id is not None else sorted(set(self.device_ids or []))
        )


class RevokeIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: str = Field(min_length=1, max_length=1000, description="why it no longer holds")
    by: str = Field(min_length=1, max_length=100, description="who revokes")

    _reason = field_validator("reason")(lambda v: _text("reason", v))
    _by = field_validator("by")(lambda v: _text("by", v))


def _answers(conn: psycopg.Connection[Any], items: list[Annotation]) -> list[dict[str, Any]]:
    """The answers of a write: each stored annotation (names included) with ``readings``,
    its device's stored readings in its period, counted for all of them in one query."""
    from luftnett.collector import annotations

    held = annotations.readings_in(conn, items)
    return [
        {**public_annotation(dataclasses.asdict(x), names=True), "readings": n}
        for x, n in zip(items, held, strict=True)
    ]


def _add(url: str, a: AnnotationIn) -> list[dict[str, Any]]:
    import psycopg

    from luftnett.collector import annotations

    with psycopg.connect(url) as conn:
        added = annotations.add_many(
            conn, a.devices(), a.starts_at, a.ends_at, a.kind, a.reason, a.by, a.invalidates
        )
        return _answers(conn, added)


def _revoke(url: str, annotation_id: int, r: RevokeIn) -> dict[str, Any]:
    import psycopg

    from luftnett.collector import annotations

    with psycopg.connect(url) as conn:
        return _answers(conn, [annotations.revoke(conn, annotation_id, r.by, r.reason)])[0]


async def annotations_of(
    conn: Conn,
    devices: list[str] | None,
    start: datetime | None = None,
    end: datetime | None = None,
    active: bool = False,
    limit: int | None = None,
) -> list[dict[str, Any]]:
    """The annotations of ``devices`` (None: all) that overlap [start, end), newest first."""
    params = {"devices": devices, "active": active, "start": start, "end": end, "limit": limit}
    cur = await conn.execute(_LIST, params)
    return await cur.fetchall()


async def _one(conn: Conn, annotation_id: int) -> dict[str, Any]:
    cur = await conn.execute(_GET, (annotation_id,))
    row = await cur.fetchone()
    if row is None:
        raise HTTPException(404, f"no annotation {annotation_id}; GET /api/v1/annotations")
    return row


async def _with_readings(conn: Conn, out: dict[str, Any], row: dict[str, Any]) -> dict[str, Any]:
    """``out`` with ``readings``: the device's stored readings in the period (what an
    invalidating annotation takes out of the statistics while it is active)."""
    from luftnett.collector.annotations import READINGS_IN, period_params

    period = (row["device_id"], row["starts_at"], row["ends_at"])
    cur = await conn.execute(READINGS_IN, period_params([period]))
    got = await cur.fetchone()
    out["readings"] = int(got["count"]) if got else 0
    return out


@router.get(
    "/annotations",
    summary="Staff annotations",
    description="Periods of a device that staff annotated (maintenance, roadworks, fireworks, "
    "fog, other), newest first, with why and whether they invalidate the readings "
    "(`invalidates`; such readings carry `annotated_invalid` and leave every statistic while "
    "the annotation is `active`). Times in UTC and Europe/Oslo (`_local`). `start`/`end` keep "
    "the annotations that overlap [start, end). Who made or revoked one (`created_by`, "
    "`revoked_by`) is given only with an API key.",
    dependencies=[ReadAccess],
)
async def list_annotations(
    conn: Conn,
    has_key: HasKey,
    device: Annotated[str | None, Query(pattern=DEVICE_PATH)] = None,
    active: Annotated[bool, Query(description="only annotations not revoked")] = False,
    start: AwareDatetime | None = None,
    end: AwareDatetime | None = None,
    limit: Annotated[int, Query(ge=1, le=10_000)] = 1000,
) -> dict[str, Any]:
    for name, t in (("start", start), ("end", end)):
        if t is not None and not _MIN <= t < _MAX:
            raise HTTPException(422, f"{name} must lie between 1970 and 2100")
    if device is not None:
        await device_exists(conn, device)
    devices = None if device is None else [device]
    rows = await annotations_of(conn, devices, start, end, active, limit)
    return {
        "count": len(rows),
        "annotations": [public_annotation(r, has_key) for r in rows],
    }


@router.get(
    "/annotations/{annotation_id}",
    summary="One staff annotation",
    description="One annotation with `readings`, the device's stored readings in its period; "
    "with an API key also who made and revoked it and its audit trail (every change, by whom "
    "and when).",
    dependencies=[ReadAccess],
)
async def get_annotation(
    conn: Conn, has_key: HasKey, annotation_id: Annotated[int, ID_PATH]
) -> dict[str, Any]:
    row = await _one(conn, annotation_id)
    out = await _with_readings(conn, public_annotation(row, has_key), row)
    if has_key:
        cur = await conn.execute(
            "SELECT action, changed_by, changed_at FROM annotation_audit "
            "WHERE annotation_id = %s ORDER BY audit_id",
            (annotation_id,),
        )
        out["audit"] = [
            {
                "action": t["action"],
                "changed_by": t["changed_by"],
                **utc_local_fields("changed_at", t["changed_at"]),
            }
            for t in await cur.fetchall()
        ]
    return out


@router.post(
    "/annotations",
    status_code=201,
    summary="Annotate a period of a device (API key)",
    description="Adds an annotation (`device_id`: the annotation is the answer) or one per "
    "device (`device_ids`: `{count, annotations}`, all stored or none). With `invalidates` "
    "the period's readings leave the statistics (hourly and daily means, maps, valid-only "
    "downloads) until it is revoked; the raw readings are never changed. The rollups of the "
    "covered hours are recomputed before the answer. 404 naming an unknown device.",
    dependencies=[ApiKey],
)
async def create_annotation(conn: Conn, request: Request, a: AnnotationIn) -> dict[str, Any]:
    devices = a.devices()
    cur = await conn.execute(
        "SELECT array_agg(d ORDER BY d) FROM unnest(%s::text[]) d "
        "WHERE NOT EXISTS (SELECT 1 FROM devices x WHERE x.device_id = d)",
        (devices,),
    )
    row = await cur.fetchone()
    if row and row["array_agg"]:
        raise HTTPException(
            404,
            f"no device {', '.join(map(repr, row['array_agg']))}; GET /api/v1/devices lists them",
        )
    try:
        out = await asyncio.to_thread(_add, request.app.state.database_url, a)
    except ConfigError as exc:  # the same checks as the model's: kept for the message
        raise HTTPException(422, str(exc)) from None
    return out[0] if a.device_id is not None else {"count": len(out), "annotations": out}


@router.post(
    "/annotations/{annotation_id}/revoke",
    summary="Revoke an annotation (API key)",
    description="The annotation stops counting: its readings are valid again (unless their "
    "own flags say otherwise) and the covered hours' rollups are recomputed. The annotation "
    "and its audit trail stay. 404 for an unknown annotation, 409 when it is already revoked.",
    dependencies=[ApiKey],
)
async def revoke_annotation(
    conn: Conn, request: Request, annotation_id: Annotated[int, ID_PATH], r: RevokeIn
) -> dict[str, Any]:
    row = await _one(conn, annotation_id)
    if row["revoked_at"] is not None:
        raise HTTPException(409, f"annotation {annotation_id} is already revoked")
    try:
        return await asyncio.to_thread(_revoke, request.app.state.database_url, annotation_id, r)
    except StorageError as exc:  # revoked by someone else meanwhile
        raise HTTPException(409, str(exc)) from None
