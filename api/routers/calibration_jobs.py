"""Reprocessing jobs of calibration (``luftnett calibrate activate`` queues them): state and
progress, read-only."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query
from psycopg import errors as pg_errors
from psycopg import sql

from luftnett.api.deps import Conn, ReadAccess
from luftnett.calibration.jobs import STATUS_SQL, status_of

router = APIRouter(prefix="/api/v1", tags=["calibration"], dependencies=[ReadAccess])


async def _jobs(conn: Conn, where: sql.Composable, params: dict[str, Any]) -> list[dict[str, Any]]:
    try:
        cur = await conn.execute(sql.SQL(STATUS_SQL).format(where=where), params)
    except pg_errors.UndefinedTable:  # a database before migration 0030
        return []
    return [status_of(tuple(r.values())).to_dict() for r in await cur.fetchall()]


@router.get(
    "/calibration/jobs",
    summary="Reprocessing jobs with their progress",
    description="The latest reprocessing jobs (one per activation of a calibration version), "
    "newest first: version, pollutant, scope (a device or a sensor model), `state` (`queued`, "
    "`running`, `done`, `failed`), readings planned and done, `percent`, parts, error.",
)
async def list_jobs(
    conn: Conn,
    open_only: Annotated[bool, Query(alias="open", description="only queued and running")] = False,
    limit: Annotated[int, Query(ge=1, le=1000)] = 20,
) -> list[dict[str, Any]]:
    where = sql.SQL("j.state IN ('queued', 'running')" if open_only else "true")
    return await _jobs(conn, where, {"limit": limit})


@router.get(
    "/calibration/jobs/{job_id}",
    summary="One reprocessing job",
    description="State and progress of one reprocessing job; 404 if there is none.",
)
async def get_job(conn: Conn, job_id: int) -> dict[str, Any]:
    if not 0 < job_id < 2**63:
        raise HTTPException(404, f"no reprocessing job {job_id}")
    rows = await _jobs(conn, sql.SQL("j.job_id = %(job)s"), {"job": job_id, "limit": 1})
    if not rows:
        raise HTTPException(404, f"no reprocessing job {job_id}; GET /api/v1/calibration/jobs")
    return rows[0]
