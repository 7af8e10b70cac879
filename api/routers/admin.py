"""Admin endpoints (API key): the quarantine of rejected payloads."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query

from luftnett.api.deps import ApiKey, Conn
from luftnett.timefmt import utc_local_fields

__all__ = ["router"]

router = APIRouter(prefix="/api/v1/admin", tags=["admin"], dependencies=[ApiKey])

_QUARANTINE = """
SELECT quarantine_id, received_at, source, topic, reason, detail, replayed_at,
       octet_length(payload) AS payload_bytes
FROM quarantine
WHERE (%(reason)s::text IS NULL OR reason = %(reason)s)
  AND (%(pending)s = false OR replayed_at IS NULL)
ORDER BY quarantine_id DESC LIMIT %(limit)s
"""


def _with_times(r: dict[str, Any]) -> dict[str, Any]:
    out = dict(r)
    for k in ("received_at", "replayed_at"):
        out.update(utc_local_fields(k, r[k]))
    return out


@router.get(
    "/quarantine",
    summary="Quarantined payloads (API key)",
    description="Rejected payloads, newest first, with reason and detail (the payload itself "
    "is not returned; `luftnett quarantine list` shows it); times in UTC and Europe/Oslo "
    "(`_local`).",
)
async def quarantine(
    conn: Conn,
    reason: Annotated[str | None, Query(pattern=r"^[a-z_]{1,40}$")] = None,
    pending: bool = False,
    limit: Annotated[int, Query(ge=1, le=10_000)] = 100,
) -> dict[str, Any]:
    cur = await conn.execute(_QUARANTINE, {"reason": reason, "pending": pending, "limit": limit})
    rows = await cur.fetchall()
    return {
        "count": len(rows),
        "items": [_with_times(r) for r in rows],
    }
