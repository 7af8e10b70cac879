"""Staff annotations of a device's period, reversible, with an audit trail.

An annotation says who, when and why (maintenance, roadworks, fireworks, fog, other). With
``invalidates`` it takes the readings in ``[starts_at, ends_at)`` (by window end ``ts``) out of
the statistics: not by touching them, but through the view ``readings_effective``, which adds
``ANNOTATED_INVALID`` at query time while the annotation is active. Revoking sets
``revoked_at/by`` and the readings count again; nothing is deleted. A trigger writes every
insert, update and delete to ``annotation_audit`` with the actor (``luftnett.actor``, set
here, else the database user), so changes made with psql are audited too.

Each change recomputes, in its transaction, the rollups of the device-hours it covers.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import psycopg
from psycopg import sql
from psycopg.rows import dict_row

from luftnett.collector.rollups import lock_devices, refresh_hours
from luftnett.db.schema import ANNOTATION_COLUMNS, ANNOTATION_KINDS
from luftnett.errors import ConfigError, StorageError

__all__ = [
    "PERIOD_MAX",
    "PERIOD_MIN",
    "READINGS_IN",
    "Annotation",
    "add",
    "add_many",
    "audit",
    "list_annotations",
    "period_params",
    "readings_in",
    "revoke",
]

#: an annotation's period lies in [PERIOD_MIN, PERIOD_MAX): the API's bounds
#: (``luftnett.api.params``), within which every time converts to local time and back
PERIOD_MIN = datetime(1970, 1, 1, tzinfo=UTC)
PERIOD_MAX = datetime(2100, 1, 1, tzinfo=UTC)

_COLS = sql.SQL(", ").join(sql.Identifier(c) for c in ANNOTATION_COLUMNS)
_ACTOR = "SELECT set_config('luftnett.actor', %s, true)"
_INSERT = sql.SQL(
    "INSERT INTO annotations (device_id, starts_at, ends_at, kind, invalidates, reason, "
    "created_by) VALUES (%s, %s, %s, %s, %s, %s, %s) RETURNING {}"
).format(_COLS)
_REVOKE = sql.SQL(
    "UPDATE annotations SET revoked_at = now(), revoked_by = %s, revoke_reason = %s "
    "WHERE annotation_id = %s AND revoked_at IS NULL RETURNING {}"
).format(_COLS)
_GET = sql.SQL("SELECT {} FROM annotations WHERE annotation_id = %s").format(_COLS)
_LIST = sql.SQL(
    "SELECT {} FROM annotations WHERE (%(device)s::text IS NULL OR device_id = %(device)s) "
    "AND (NOT %(active)s OR revoked_at IS NULL) ORDER BY starts_at, annotation_id"
).format(_COLS)
#: the (device, UTC hour) of stored readings in each period: parameters from
#: :func:`period_params`
_HOURS = """
SELECT DISTINCT r.device_id, date_trunc('hour', r.ts, 'UTC')
FROM unnest(%s::text[], %s::timestamptz[], %s::timestamptz[]) AS a(d, s, e)
JOIN readings r ON r.device_id = a.d AND r.ts >= a.s AND r.ts < a.e
"""
_AUDIT = """
SELECT audit_id, annotation_id, action, changed_by, changed_at, old_row, new_row
FROM annotation_audit WHERE annotation_id = %s ORDER BY audit_id
"""


@dataclass(frozen=True, slots=True)
class Annotation:
    annotation_id: int
    device_id: str
    starts_at: datetime
    ends_at: datetime
    kind: str
    invalidates: bool
    reason: str
    created_by: str
    created_at: datetime
    revoked_at: datetime | None
    revoked_by: str | None
    revoke_reason: str | None

    @property
    def active(self) -> bool:
        return self.revoked_at is None


def _refresh(conn: psycopg.Connection[Any], items: list[Annotation]) -> None:
    """Recompute the rollups of the hours holding readings of these annotations' periods:
    one query for the hours and one refresh, however many devices."""
    if items:
        periods = [(a.device_id, a.starts_at, a.ends_at) for a in items]
        refresh_hours(conn, conn.execute(_HOURS, period_params(periods)).fetchall())


def add(
    conn: psycopg.Connection[Any],
    device_id: str,
    starts_at: datetime,
    ends_at: datetime,
    kind: str,
    reason: str,
    by: str,
    invalidates: bool = False,
) -> Annotation:
    """Annotate ``[starts_at, ends_at)`` of a device; commit; return the stored annotation."""
    return add_many(conn, [device_id], starts_at, ends_at, kind, reason, by, invalidates)[0]


def add_many(
    conn: psycopg.Connection[Any],
    device_ids: list[str],
    starts_at: datetime,
    ends_at: datetime,
    kind: str,
    reason: str,
    by: str,
    invalidates: bool = False,
) -> list[Annotation]:
    """The same period of several devices (New Year's fireworks over the whole town), one
    annotation each, in one transaction: all are stored, or none (an unknown device)."""
    if kind not in ANNOTATION_KINDS:
        raise ConfigError(f"annotation kind {kind!r} unknown; use one of {ANNOTATION_KINDS}")
    for name, t in (("start", starts_at), ("end", ends_at)):
        if t.tzinfo is None:
            raise ConfigError(f"{name} {t.isoformat()} has no time zone; add Z or +01:00")
        if not PERIOD_MIN <= t < PERIOD_MAX:
            raise ConfigError(
                f"{name} {t.isoformat()} is out of range: an annotation's period must lie "
                "between 1970-01-01 and 2100-01-01 (UTC)"
            )
    if ends_at <= starts_at:
        raise ConfigError(f"end {ends_at.isoformat()} is not after start {starts_at.isoformat()}")
    if not reason.strip():
        raise ConfigError(f"an annotation needs a reason, in words (got {reason!r})")
    if not by.strip():
        raise ConfigError(f"an annotation needs who made it (--by; got {by!r})")
    devices = sorted(set(device_ids))
    if not devices:
        raise ConfigError("name at least one device to annotate")
    out: list[Annotation] = []
    with conn.transaction():
        conn.execute(_ACTOR, (by,))
        lock_devices(conn, devices)
        for device_id in devices:
            try:
                row = conn.execute(
                    _INSERT, (device_id, starts_at, ends_at, kind, invalidates, reason, by)
                ).fetchone()
            except psycopg.errors.ForeignKeyViolation as exc:
                raise StorageError(
                    f"no device {device_id!r}; `luftnett ledger` or GET /api/v1/devices lists them"
                ) from exc
            assert row is not None
            out.append(Annotation(*row))
        if invalidates:
            _refresh(conn, out)
    return out


def readings_in(conn: psycopg.Connection[Any], items: list[Annotation]) -> list[int]:
    """Each annotation's stored readings of its device in its period (what an invalidating
    one takes out of the statistics while active)."""
    if not items:
        return []
    periods = [(a.device_id, a.starts_at, a.ends_at) for a in items]
    rows = conn.execute(READINGS_IN, period_params(periods)).fetchall()
    return [int(r[0]) for r in rows]


#: each period's stored readings of its device, in the order of :func:`period_params`
READINGS_IN = (
    "SELECT (SELECT count(*) FROM readings r WHERE r.device_id = a.d AND r.ts >= a.s "
    "AND r.ts < a.e) FROM unnest(%s::text[], %s::timestamptz[], %s::timestamptz[]) "
    "WITH ORDINALITY AS a(d, s, e, i) ORDER BY a.i"
)


def period_params(periods: list[tuple[str, datetime, datetime]]) -> list[list[Any]]:
    """The parameters of :data:`READINGS_IN` and ``_HOURS``: (device, start, end) of each
    period, as columns."""
    return [list(col) for col in zip(*periods, strict=True)]


def revoke(conn: psycopg.Connection[Any], annotation_id: int, by: str, reason: str) -> Annotation:
    """Revoke an active annotation (the readings count again); commit; return it."""
    if not reason.strip() or not by.strip():
        raise ConfigError("revoking needs a reason and who revokes (--by)")
    with conn.transaction():
        conn.execute(_ACTOR, (by,))
        current = conn.execute(_GET, (annotation_id,)).fetchone()
        if current is None:
            raise StorageError(f"no annotation {annotation_id}; `luftnett annotate list`")
        lock_devices(conn, [current[1]])
        row = conn.execute(_REVOKE, (by, reason, annotation_id)).fetchone()
        if row is None:
            raise StorageError(f"annotation {annotation_id} is already revoked")
        a = Annotation(*row)
        if a.invalidates:
            _refresh(conn, [a])
    return a


def list_annotations(
    conn: psycopg.Connection[Any], device_id: str | None = None, active_only: bool = False
) -> list[Annotation]:
    rows = conn.execute(_LIST, {"device": device_id, "active": active_only}).fetchall()
    return [Annotation(*r) for r in rows]


def audit(conn: psycopg.Connection[Any], annotation_id: int) -> list[dict[str, Any]]:
    """The audit rows of one annotation, oldest first."""
    with conn.cursor(row_factory=dict_row) as cur:
        return list(cur.execute(_AUDIT, (annotation_id,)).fetchall())
