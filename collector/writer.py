"""Batched, exactly-once writes: one transaction per batch. The devices upsert locks each
device of the batch; the device's received seq ranges (``seq_ledger``, 0020) that overlap the
batch are read and the rows they hold dropped (and repeats inside the batch); a binary COPY
writes the rest straight into ``readings`` and their seq ranges join the ledger.

In the same transaction: quality control sets ``flags`` and ``qc_checks`` on each row before the
COPY (one query per batch loads the stored neighbours the series checks need), the batch's
received/stored counts go to ``ingest_counts`` (the completeness ledger's duplicates), and the
rollups of every device-hour that gained readings are recomputed.
"""

from __future__ import annotations

import logging
from bisect import bisect_right
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import psycopg
from psycopg import sql

from luftnett.calibration.apply_db import CalibrationCache
from luftnett.collector import qc
from luftnett.collector.calibrate import calibrate_at_ingest
from luftnett.collector.ledger import record_ingest
from luftnett.collector.rollups import mark_dirty, refresh_hours
from luftnett.collector.validate import Accepted, Quarantined
from luftnett.contracts.units import FLAGS_VERSION
from luftnett.db.schema import QUARANTINE_COLUMNS, READING_COLUMNS, VALUE_COLUMNS, WRITE_COLUMNS

__all__ = ["BatchResult", "Writer"]

log = logging.getLogger(__name__)

_COLS = sql.SQL(", ").join(sql.Identifier(c) for c in WRITE_COLUMNS)
_I_DEVICE, _I_SEQ, _I_TS, _I_WINDOW, _I_FLAGS = (
    READING_COLUMNS.index(c) for c in ("device_id", "seq", "ts", "window_s", "flags")
)
_BIG = 2**63
_I_VALUE_LIST = [READING_COLUMNS.index(q) for q in VALUE_COLUMNS]

_COPY = sql.SQL("COPY readings ({}) FROM STDIN (FORMAT BINARY)").format(_COLS)
# binary COPY types in WRITE_COLUMNS order; jsonb goes as bytea: its wire format is b"\\x01" + text
_COPY_TYPES = {"device_id": "text", "seq": "int8", "ts": "timestamptz", "window_s": "float4",
               "n_samples": "int4", "sensor_model": "text", "sensor_serial": "text",
               "extra": "bytea", "flags": "int8", "schema_version": "int2",
               "qc_checks": "int8", "qc_version": "int2"}  # fmt: skip
_TYPES = [_COPY_TYPES.get(c, "float4") for c in WRITE_COLUMNS]
_I_EXTRA = READING_COLUMNS.index("extra")

# Exactly once: the devices upsert (sorted) holds each device's row lock to the commit, so the
# writers of one device take turns; the next statement sees the ranges the previous one stored.
_UPSERT_DEVICES = """
INSERT INTO devices (device_id, sensor_model, sensor_serial, agent_version)
SELECT * FROM unnest(%s::text[], %s::text[], %s::text[], %s::text[]) ORDER BY 1
ON CONFLICT (device_id) DO UPDATE SET
    sensor_model = EXCLUDED.sensor_model,
    sensor_serial = COALESCE(EXCLUDED.sensor_serial, devices.sensor_serial),
    agent_version = EXCLUDED.agent_version,
    last_seen = now()
"""
_LEDGER_ENSURE = (
    "INSERT INTO seq_ledger (device_id) SELECT unnest(%s::text[]) ORDER BY 1 ON CONFLICT DO NOTHING"
)
# the received seq ranges of each device that overlap the batch's [lo, hi]
_LEDGER_OVERLAP = """
SELECT b.device_id, lower(r), upper(r)
FROM unnest(%s::text[], %s::int8[], %s::int8[]) AS b(device_id, lo, hi)
JOIN seq_ledger l USING (device_id)
CROSS JOIN LATERAL unnest(l.received * int8multirange(int8range(b.lo, b.hi, '[]'))) AS r
"""
_LEDGER_ADD = """
UPDATE seq_ledger l SET received = l.received + n.m, updated_at = now()
FROM (SELECT d, range_agg(int8range(lo, hi)) AS m
      FROM unnest(%s::text[], %s::int8[], %s::int8[]) AS u(d, lo, hi) GROUP BY d) n
WHERE l.device_id = n.d
"""

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
        self._calibration = CalibrationCache()
        self._known: set[str] = set()  # registered devices seen (devices are never deleted)
        self.source = source
        self.qc_config = qc_config
        self.rollups = rollups
        self.deferred = deferred

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
        """Rows in WRITE_COLUMNS order: flags from quality control, qc_checks, qc_version;
        ``extra`` in jsonb's binary wire format (``b"\\x01"`` + JSON text) for the COPY."""
        batch = [
            (r[_I_DEVICE], r[_I_SEQ], r[_I_TS], r[_I_FLAGS], *[r[i] for i in _I_VALUE_LIST])
            for r in rows
        ]
        checks, flags = qc.batch_quality(
            self._history(rows), batch, VALUE_COLUMNS, received_at, self.qc_config
        )
        fl, ex = _I_FLAGS, _I_EXTRA
        out = []
        for r, c, f in zip(rows, checks.tolist(), flags.tolist(), strict=True):
            extra = r[ex]
            if extra is not None:
                r = (*r[:ex], b"\x01" + extra.encode(), *r[ex + 1 :])
            out.append((*r[:fl], f, *r[fl + 1 :], c, FLAGS_VERSION))
        return out

    def dedupe(
        self, rows: Sequence[tuple[Any, ...]]
    ) -> tuple[list[tuple[Any, ...]], list[tuple[str, int, int]]]:
        """The rows whose (device, seq) the ledger does not hold yet, each once (the first
        copy in the batch), and the seq ranges ``(device, lo, hi)`` (half-open) they add.

        Call inside the transaction, after the devices upsert has locked the devices."""
        by_dev: dict[str, list[int]] = {}
        for r in rows:
            by_dev.setdefault(r[_I_DEVICE], []).append(r[_I_SEQ])
        devices = sorted(by_dev)
        self.conn.execute(_LEDGER_ENSURE, (devices,))
        have: dict[str, list[tuple[int, int]]] = {}
        for d, lo, hi in self.conn.execute(
            _LEDGER_OVERLAP,
            (devices, [min(by_dev[d]) for d in devices], [max(by_dev[d]) for d in devices]),
        ).fetchall():
            have.setdefault(d, []).append((lo, hi))
        fresh: list[tuple[Any, ...]]
        if not have and all(len(set(s)) == len(s) for s in by_dev.values()):
            fresh = list(rows)  # the usual case: nothing seen before, no repeats in the batch
        else:
            starts = {d: sorted(v) for d, v in have.items()}
            seen: set[tuple[str, int]] = set()
            fresh = []
            for r in rows:
                key = (r[_I_DEVICE], r[_I_SEQ])
                if key in seen:
                    continue
                seen.add(key)
                got = starts.get(key[0])
                if got:
                    i = bisect_right(got, (key[1], _BIG)) - 1
                    if i >= 0 and got[i][0] <= key[1] < got[i][1]:
                        continue
                fresh.append(r)
        added: list[tuple[str, int, int]] = []
        seqs_by_dev: dict[str, list[int]] = {}
        for r in fresh:
            seqs_by_dev.setdefault(r[_I_DEVICE], []).append(r[_I_SEQ])
        for d, seqs in seqs_by_dev.items():
            seqs.sort()
            lo = prev = seqs[0]
            for q in seqs[1:]:
                if q != prev + 1:
                    added.append((d, lo, prev + 1))
                    lo = q
                prev = q
            added.append((d, lo, prev + 1))
        return fresh, added

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
            if accepted:
                devices = sorted({a.device[0]: a.device for a in accepted}.values())
                self.conn.execute(_UPSERT_DEVICES, [list(c) for c in zip(*devices, strict=True)])
            if n_rows:
                fresh, added = self.dedupe(rows)
                stored = len(fresh)
                if fresh:
                    checked = self.quality(fresh, received_at)
                    with self.conn.cursor() as cur, cur.copy(_COPY) as copy:
                        copy.set_types(_TYPES)
                        for row in checked:
                            copy.write_row(row)
                    self.conn.execute(_LEDGER_ADD, [list(c) for c in zip(*added, strict=True)])
                    # calibrated values, same transaction
                    calibrate_at_ingest(self.conn, fresh, self._calibration)
                got = _hour_counts((r[_I_DEVICE], r[_I_TS]) for r in rows)
                kept = _hour_counts((r[_I_DEVICE], r[_I_TS]) for r in fresh)
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
