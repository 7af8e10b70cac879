"""Admin endpoints (API key): the quarantine of rejected payloads."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query

from luftnett.api.deps import ApiKey, Conn

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


@router.get(
    "/quarantine",
    summary="Quarantined payloads (API key)",
    description="Rejected payloads, newest first, with reason and detail (the payload itself "
    "is not returned; `luftnett quarantine list` shows it).",
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
        "items": [
            {
                **r,
                "received_at": r["received_at"].isoformat(),
                "replayed_at": None if r["replayed_at"] is None else r["replayed_at"].isoformat(),
            }
            for r in rows
        ],
    }
