"""The figures of a soak run, from the devices' outboxes and the database, and the ledger check.

Per device:

- ``produced``: the outbox's ``next_seq`` — every reading ever numbered;
- ``shed``: readings the outbox's bound or full-disk policy dropped (``meta.shed``), of which
  ``shed_lost`` were never stored (a shed reading may already have been on its way);
- ``stored``: rows of the exactly-once ledger ``reading_keys``;
- ``lost`` = produced - stored - shed_lost: numbered readings that vanished (expected 0);
- ``duplicated``: rows of ``readings`` beyond one per ``(device, seq)`` (must be 0).

Readings an outbox could not number at all (full disk, and the retry failed too: the policy's
last resort) are counted apart as ``unnumbered``; they never had a sequence number to miss.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import psycopg

from luftnett.collector.ledger import ledger
from luftnett.collector.rollups import DayConvention
from luftnett.contracts.units import ReadingFlag

__all__ = ["DeviceFigures", "DeviceRecord", "SoakFigures", "count"]


@dataclass(slots=True)
class DeviceRecord:
    """What the soak knows of a device from its own side."""

    device_id: str
    kind: str  # sim | pty | edge-process
    model: str
    role: str
    produced: int  # outbox next_seq
    shed: int  # outbox meta.shed
    unsent: int  # left in the outbox at the end (expected 0)
    averaged: int | None = None  # readings its averager closed (simulated devices)
    unnumbered: int = 0  # disk full and the retry failed: never got a seq
    frames: int = 0
    rejected: Counter[str] = field(default_factory=Counter)
    max_depth: int = 0  # deepest outbox backlog seen (simulated devices)


@dataclass(slots=True)
class DeviceFigures:
    record: DeviceRecord
    stored: int = 0
    rows: int = 0
    distinct: int = 0
    beyond: int = 0  # keys with a seq the outbox never issued (expected 0)
    clock_suspect: int = 0
    stuck: int = 0
    warming_up: int = 0
    ledger_sent: int = 0
    ledger_stored: int = 0
    ledger_missing: int = 0
    ledger_duplicates: int = 0

    @property
    def missing(self) -> int:
        return self.record.produced - self.stored

    @property
    def shed_lost(self) -> int:
        return max(0, min(self.record.shed, self.missing))

    @property
    def lost(self) -> int:
        return max(0, self.missing - self.record.shed)

    @property
    def duplicated(self) -> int:
        return self.rows - self.distinct


@dataclass(slots=True)
class SoakFigures:
    devices: list[DeviceFigures]
    quarantine: dict[str, int]
    collector_duplicates: int  # copies received and not stored (ingest_counts)

    def total(self, name: str) -> int:
        return sum(int(getattr(d, name)) for d in self.devices)

    def produced(self) -> int:
        return sum(d.record.produced for d in self.devices)

    def shed(self) -> int:
        return sum(d.record.shed for d in self.devices)

    @property
    def last_line(self) -> str:
        return (
            f"produced={self.produced()} stored={self.total('stored')} "
            f"duplicated={self.total('duplicated')} lost={self.total('lost')} "
            f"shed={self.total('shed_lost')} quarantined={sum(self.quarantine.values())}"
        )


_PER_DEVICE = """
SELECT k.device_id, k.stored, coalesce(r.rows, 0), coalesce(r.distinct_seq, 0),
       coalesce(r.clock_suspect, 0), coalesce(r.stuck, 0), coalesce(r.warming_up, 0),
       k.first_ts, k.last_ts
FROM (SELECT device_id, count(*) AS stored, min(ts) AS first_ts, max(ts) AS last_ts
      FROM reading_keys GROUP BY device_id) k
LEFT JOIN (SELECT device_id, count(*) AS rows, count(DISTINCT seq) AS distinct_seq,
                  count(*) FILTER (WHERE flags & %(clock)s <> 0) AS clock_suspect,
                  count(*) FILTER (WHERE flags & %(stuck)s <> 0) AS stuck,
                  count(*) FILTER (WHERE flags & %(warm)s <> 0) AS warming_up
           FROM readings GROUP BY device_id) r USING (device_id)
"""

_BEYOND = "SELECT count(*) FROM reading_keys WHERE device_id = %s AND seq >= %s"


def count(db_url: str, records: list[DeviceRecord]) -> SoakFigures:
    """Join the devices' own counts with the database's, device by device, and the ledger."""
    conv = DayConvention.COMPLIANCE
    params = {
        "clock": int(ReadingFlag.CLOCK_SUSPECT),
        "stuck": int(ReadingFlag.STUCK),
        "warm": int(ReadingFlag.WARMING_UP),
    }
    with psycopg.connect(db_url) as conn:
        per = {r[0]: r for r in conn.execute(_PER_DEVICE, params).fetchall()}
        figures = []
        for rec in records:
            f = DeviceFigures(rec)
            row = per.get(rec.device_id)
            if row is not None:
                f.stored, f.rows, f.distinct = int(row[1]), int(row[2]), int(row[3])
                f.clock_suspect, f.stuck, f.warming_up = int(row[4]), int(row[5]), int(row[6])
                (beyond,) = conn.execute(_BEYOND, (rec.device_id, rec.produced)).fetchone() or (0,)
                f.beyond = int(beyond)
                first, last = (t.astimezone(conv.tz).date() for t in (row[7], row[8]))
                days = (last - first).days + 1
                for entry in ledger(conn, last, rec.device_id, conv, days=days):
                    f.ledger_sent += entry.sent
                    f.ledger_stored += entry.stored
                    f.ledger_missing += entry.missing
                    f.ledger_duplicates += entry.duplicates
            figures.append(f)
        quarantine = {
            str(r[0]): int(r[1])
            for r in conn.execute(
                "SELECT reason, count(*) FROM quarantine GROUP BY reason ORDER BY reason"
            ).fetchall()
        }
        (dupes,) = conn.execute(
            "SELECT coalesce(sum(duplicates), 0) FROM ingest_counts"
        ).fetchone() or (0,)
    return SoakFigures(figures, quarantine, int(dupes))
