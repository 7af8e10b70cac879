"""List and re-process quarantined payloads.

Every rejected payload is kept verbatim with its reason. After a fix (a newer collector that
knows a schema version, a registered device, a corrected contract) ``replay`` validates each
selected payload again: those now valid are written exactly as if they had just arrived
(idempotent on ``(device, seq)``) and marked ``replayed_at``; the others stay, with their
current reason reported. A record whose readings still share their seqs with other stored
readings (``seq_reused``) stays too, and its replay writes nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg

from luftnett.collector.validate import Accepted, Quarantined, validate_message
from luftnett.collector.writer import Writer

__all__ = ["QuarantineRecord", "ReplayResult", "list_records", "replay"]


@dataclass(frozen=True, slots=True)
class QuarantineRecord:
    quarantine_id: int
    received_at: datetime
    source: str
    topic: str | None
    reason: str
    detail: str
    size: int
    replayed_at: datetime | None
    payload: bytes


@dataclass(frozen=True, slots=True)
class ReplayResult:
    replayed: int  # written (or found already stored) and marked
    stored: int  # new readings that reached the readings table
    still_rejected: dict[int, str]  # quarantine_id -> current reason


_SELECT = """
SELECT quarantine_id, received_at, source, topic, reason, detail, length(payload), replayed_at,
       payload
FROM quarantine
WHERE (%(reason)s::text IS NULL OR reason = %(reason)s)
  AND (%(ids)s::bigint[] IS NULL OR quarantine_id = ANY(%(ids)s))
  AND (%(pending)s = false OR replayed_at IS NULL)
ORDER BY quarantine_id
LIMIT %(limit)s
"""


def list_records(
    conn: psycopg.Connection[Any],
    *,
    reason: str | None = None,
    ids: Sequence[int] | None = None,
    pending_only: bool = True,
    limit: int = 100,
) -> list[QuarantineRecord]:
    rows = conn.execute(
        _SELECT,
        {
            "reason": reason,
            "ids": list(ids) if ids else None,
            "pending": pending_only,
            "limit": limit,
        },
    ).fetchall()
    return [
        QuarantineRecord(r[0], r[1], r[2], r[3], r[4], r[5], r[6], r[7], bytes(r[8])) for r in rows
    ]


def replay(
    conn: psycopg.Connection[Any],
    topic_root: str,
    *,
    reason: str | None = None,
    ids: Sequence[int] | None = None,
    limit: int = 10_000,
    dry_run: bool = False,
) -> ReplayResult:
    """Re-validate and write the selected pending records; see the module docstring."""
    records = list_records(conn, reason=reason, ids=ids, pending_only=True, limit=limit)
    # end the listing's transaction: each record is then written in a transaction of its own,
    # committed as it goes, not as a savepoint of one open transaction that would hold every
    # replayed device's lock (the collector's batches for it wait) and every row to the end
    conn.commit()
    writer = Writer(conn, source="replay")
    replayed = stored = 0
    still: dict[int, str] = {}
    for rec in records:
        item = validate_message(topic_root, rec.topic or "", rec.payload)
        if isinstance(item, Quarantined):
            still[rec.quarantine_id] = item.reason
            continue
        assert isinstance(item, Accepted)
        if dry_run:
            replayed += 1
            continue
        try:
            with conn.transaction() as tx:
                res = writer.write([item])
                if res.reused:  # quarantined again: undo, the record stays as it is
                    raise psycopg.Rollback(tx)
                conn.execute(
                    "UPDATE quarantine SET replayed_at = now() WHERE quarantine_id = %s",
                    (rec.quarantine_id,),
                )
        except psycopg.OperationalError:
            raise
        except psycopg.Error as exc:
            still[rec.quarantine_id] = f"db_rejected: {str(exc).strip()[:120]}"
            continue
        if res.reused:
            still[rec.quarantine_id] = "seq_reused"
            continue
        replayed += 1
        stored += res.stored
    return ReplayResult(replayed=replayed, stored=stored, still_rejected=still)
