"""Batched, idempotent writes: one transaction per batch, COPY into a temp table, then insert
the (device, seq) pairs not seen before into the ledger and their rows into ``readings``."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg import sql

from luftnett.collector.validate import Accepted, Quarantined
from luftnett.db.schema import QUARANTINE_COLUMNS, READING_COLUMNS

__all__ = ["BatchResult", "Writer"]

log = logging.getLogger(__name__)

_COLS = sql.SQL(", ").join(sql.Identifier(c) for c in READING_COLUMNS)
_TMP_COLS = sql.SQL(", ").join(sql.SQL("t.") + sql.Identifier(c) for c in READING_COLUMNS)

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
    """
).format(cols=_COLS, tcols=_TMP_COLS)

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


class Writer:
    def __init__(self, conn: psycopg.Connection[Any], source: str = "mqtt") -> None:
        self.conn = conn
        self.source = source
        conn.execute(_CREATE_TMP)
        conn.commit()

    def write(self, items: Sequence[Accepted | Quarantined]) -> BatchResult:
        """Write a batch in one transaction; raise psycopg errors to the caller (it retries)."""
        accepted = [i for i in items if isinstance(i, Accepted)]
        bad = [i for i in items if isinstance(i, Quarantined)]
        n_rows = sum(len(a.rows) for a in accepted)
        stored = 0
        with self.conn.transaction():
            devices = {a.device[0]: a.device for a in accepted}
            if devices:
                with self.conn.cursor() as cur:
                    cur.executemany(_UPSERT_DEVICE, sorted(devices.values()))
            if n_rows:
                with self.conn.cursor() as cur:
                    with cur.copy(_COPY) as copy:
                        for a in accepted:
                            for row in a.rows:
                                copy.write_row(row)
                    cur.execute(_INSERT)
                    stored = cur.rowcount
            if bad:
                with self.conn.cursor() as cur:
                    cur.executemany(
                        _INSERT_QUARANTINE,
                        [(self.source, q.topic, q.payload, q.reason, q.detail) for q in bad],
                    )
        return BatchResult(
            received=n_rows, stored=stored, duplicates=n_rows - stored, quarantined=len(bad)
        )
