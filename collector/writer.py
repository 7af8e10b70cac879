"""Batched, idempotent writes: one transaction per batch, COPY into a temp table, then insert
the (device, seq) pairs not seen before into the ledger and their rows into ``readings``.

In the same transaction: quality control sets ``flags`` and ``qc_checks`` on each row before the
COPY (one query per batch loads the stored neighbours the series checks need), the batch's
received/stored counts go to ``ingest_counts`` (the completeness ledger's duplicates), and the
rollups of every device-hour that gained readings are recomputed.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import psycopg
from psycopg import sql

from luftnett.calibration.apply_db import apply_at_ingest
from luftnett.collector import qc
from luftnett.collector.ledger import record_ingest
from luftnett.collector.rollups import mark_dirty, refresh_hours
from luftnett.collector.validate import Accepted, Quarantined
from luftnett.contracts.units import FLAGS_VERSION
from luftnett.db.schema import QUARANTINE_COLUMNS, READING_COLUMNS, VALUE_COLUMNS, WRITE_COLUMNS

__all__ = ["BatchResult", "Writer"]

log = logging.getLogger(__name__)

_COLS = sql.SQL(", ").join(sql.Identifier(c) for c in WRITE_COLUMNS)
_TMP_COLS = sql.SQL(", ").join(sql.SQL("t.") + sql.Identifier(c) for c in WRITE_COLUMNS)
_I_DEVICE, _I_SEQ, _I_TS, _I_WINDOW, _I_FLAGS = (
    READING_COLUMNS.index(c) for c in ("device_id", "seq", "ts", "window_s", "flags")
)
_I_VALUE_LIST = [READING_COLUMNS.index(q) for q in VALUE_COLUMNS]

_CREATE_TMP = sql.SQL(
    "CREATE TEMP TABLE IF NOT EXISTS incoming (LIKE readings INCLUDING DEFAULTS) "
    "ON COMMIT DELETE ROWS"
)
_COPY = sql.SQL("COPY incoming ({}) FROM STDIN").format(_COLS)
_INSERT = sql.SQL(
    """
    WITH dedup AS (
        SELECT DISTINCT ON (device_id, seq) * FROM incoming ORDER BY device_id, seq
    ), fresh AS (
        INSERT INTO reading_keys (device_id, seq, ts)
        SELECT device_id, seq, ts FROM dedup
        ON CONFLICT DO NOTHING
        RETURNING device_id, seq
    )
    INSERT INTO readings ({cols})
    SELECT {tcols} FROM dedup t JOIN fresh USING (device_id, seq)
    RETURNING device_id, ts
    """
).format(cols=_COLS, tcols=_TMP_COLS)

# The stored neighbours of each device around the batch: n before its first ts, all inside
# its span, n after its last ts. One query per batch, for the stuck and spike checks.
_HISTORY = sql.SQL(
    """
    SELECT b.device_id, r.seq, r.ts, {vals}
    FROM unnest(%(devices)s::text[], %(lo)s::timestamptz[], %(hi)s::timestamptz[])
        AS b(device_id, lo, hi)
    CROSS JOIN LATERAL (
        (SELECT * FROM readings WHERE device_id = b.device_id AND ts < b.lo
         ORDER BY ts DESC LIMIT %(n)s)
        UNION ALL
        (SELECT * FROM readings WHERE device_id = b.device_id AND ts >= b.lo AND ts <= b.hi)
        UNION ALL
        (SELECT * FROM readings WHERE device_id = b.device_id AND ts > b.hi
         ORDER BY ts LIMIT %(n)s)
    ) r
    """
).format(vals=sql.SQL(", ").join(sql.SQL("r.") + sql.Identifier(q) for q in VALUE_COLUMNS))

_UPSERT_DEVICE = """
INSERT INTO devices (device_id, sensor_model, sensor_serial, agent_version)
VALUES (%s, %s, %s, %s)
ON CONFLICT (device_id) DO UPDATE SET
    sensor_model = EXCLUDED.sensor_model,
    sensor_serial = COALESCE(EXCLUDED.sensor_serial, devices.sensor_serial),
    agent_version = EXCLUDED.agent_version,
    last_seen = now()
"""

_INSERT_QUARANTINE = sql.SQL("INSERT INTO quarantine ({}) VALUES (%s, %s, %s, %s, %s)").format(
    sql.SQL(", ").join(sql.Identifier(c) for c in QUARANTINE_COLUMNS)
)


@dataclass(frozen=True, slots=True)
class BatchResult:
    received: int
    stored: int
    duplicates: int
    quarantined: int


def _hour_counts(pairs: Iterable[tuple[str, datetime]]) -> Counter[tuple[str, datetime]]:
    """Readings per (device, UTC hour): integer hours first, datetimes once per key."""
    by_int = Counter((d, int(ts.timestamp()) // 3600) for d, ts in pairs)
    return Counter({(d, datetime.fromtimestamp(h * 3600, UTC)): n for (d, h), n in by_int.items()})


class Writer:
    """Write batches of validated messages.

    Rollups: by default each batch recomputes the device-hours it touched; ``deferred=True``
    only marks them (table ``rollup_dirty``, same transaction) for
    :func:`~luftnett.collector.rollups.refresh_dirty`, which the collector runs every few
    seconds; ``rollups=False`` leaves them to ``luftnett rollup refresh`` (a scheduled job).
    """

    def __init__(
        self,
        conn: psycopg.Connection[Any],
        source: str = "mqtt",
        qc_config: qc.QcConfig = qc.DEFAULT_QC,
        rollups: bool = True,
        deferred: bool = False,
        register_unknown: bool = True,
    ) -> None:
        self.conn = conn
        self.register_unknown = register_unknown
        self._known: set[str] = set()  # registered devices seen (devices are never deleted)
        self.source = source
        self.qc_config = qc_config
        self.rollups = rollups
        self.deferred = deferred
        conn.execute(_CREATE_TMP)
        conn.commit()

    def _history(self, rows: Sequence[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
        """Stored neighbours as ``(device_id, seq, ts, 0, *values)`` rows."""
        span: dict[str, tuple[datetime, datetime]] = {}
        for r in rows:
            d, ts = r[_I_DEVICE], r[_I_TS]
            lo, hi = span.get(d, (ts, ts))
            span[d] = (min(lo, ts), max(hi, ts))
        devices = sorted(span)
        cur = self.conn.execute(
            _HISTORY,
            {
                "devices": devices,
                "lo": [span[d][0] for d in devices],
                "hi": [span[d][1] for d in devices],
                "n": self.qc_config.context_n,
            },
        )
        return [(rec[0], rec[1], rec[2], 0, *rec[3:]) for rec in cur.fetchall()]

    def quality(
        self, rows: Sequence[tuple[Any, ...]], received_at: datetime
    ) -> list[tuple[Any, ...]]:
        """Rows in WRITE_COLUMNS order: flags from quality control, qc_checks, qc_version."""
        batch = [
            (r[_I_DEVICE], r[_I_SEQ], r[_I_TS], r[_I_FLAGS], *[r[i] for i in _I_VALUE_LIST])
            for r in rows
        ]
        checks, flags = qc.batch_quality(
            self._history(rows), batch, VALUE_COLUMNS, received_at, self.qc_config
        )
        out = []
        for r, c, f in zip(rows, checks.tolist(), flags.tolist(), strict=True):
            row = list(r)
            row[_I_FLAGS] = f
            out.append((*row, c, FLAGS_VERSION))
        return out

    def _refuse_unknown(self, accepted: list[Accepted]) -> tuple[list[Accepted], list[Quarantined]]:
        """Split off the messages of devices missing from ``devices`` as quarantine records."""
        ids = {a.device[0] for a in accepted} - self._known
        if ids:
            found = self.conn.execute(
                "SELECT device_id FROM devices WHERE device_id = ANY(%s)", (sorted(ids),)
            ).fetchall()
            self._known |= {r[0] for r in found}
        keep = [a for a in accepted if a.device[0] in self._known]
        refused = [
            Quarantined(
                a.topic,
                a.payload,
                "unknown_device",
                f"device {a.device[0]!r} is not registered; add it, then "
                "`luftnett quarantine replay --reason unknown_device`",
            )
            for a in accepted
            if a.device[0] not in self._known
        ]
        return keep, refused

    def write(self, items: Sequence[Accepted | Quarantined]) -> BatchResult:
        """Write a batch in one transaction; raise psycopg errors to the caller (it retries)."""
        accepted = [i for i in items if isinstance(i, Accepted)]
        bad = [i for i in items if isinstance(i, Quarantined)]
        stored = 0
        received_at = datetime.now(UTC)
        with self.conn.transaction():
            if accepted and not self.register_unknown:
                accepted, refused = self._refuse_unknown(accepted)
                bad += refused
            rows = [row for a in accepted for row in a.rows]
            n_rows = len(rows)
            devices = {a.device[0]: a.device for a in accepted}
            if devices:
                with self.conn.cursor() as cur:
                    cur.executemany(_UPSERT_DEVICE, sorted(devices.values()))
            if n_rows:
                checked = self.quality(rows, received_at)
                with self.conn.cursor() as cur:
                    with cur.copy(_COPY) as copy:
                        for row in checked:
                            copy.write_row(row)
                    cur.execute(_INSERT)
                    fresh: list[tuple[str, datetime]] = [(d, ts) for d, ts in cur.fetchall()]
                stored = len(fresh)
                apply_at_ingest(self.conn, rows, fresh)  # calibrated values, same txn
                got = _hour_counts((r[_I_DEVICE], r[_I_TS]) for r in rows)
                kept = _hour_counts(fresh)
                record_ingest(self.conn, got, kept)
                if self.rollups and fresh:
                    if self.deferred:
                        mark_dirty(self.conn, kept.keys())
                    else:
                        refresh_hours(self.conn, kept.keys())
            if bad:
                with self.conn.cursor() as cur:
                    cur.executemany(
                        _INSERT_QUARANTINE,
                        [(self.source, q.topic, q.payload, q.reason, q.detail) for q in bad],
                    )
        return BatchResult(
            received=n_rows, stored=stored, duplicates=n_rows - stored, quarantined=len(bad)
        )
