"""The completeness ledger: per device and day, what was sent, stored, late, duplicated, lost.

"We lost nothing" as a number anyone can check. Per device and day (either day convention):

- ``stored``: stored readings whose ``ts`` is in the day (each (device, seq) is stored once:
  the exactly-once ledger ``seq_ledger`` holds each device's received seqs as ranges);
- ``sent``: what the device numbered: for each stored reading, its seq minus the previous stored
  seq of the device (1 for the device's first reading; taken from ``seq_ledger``), so each gap
  in the numbering counts on the day of the reading that follows it; summed over all days this
  is max seq - min seq + 1;
- ``missing`` = sent - stored, and ``missing_ranges``: the seq ranges never stored;
- ``late``: stored readings received more than ``late_after`` after their ``ts``;
- ``duplicates``: copies the writer received but did not store (redeliveries, repeats inside
  a batch), counted per batch into ``ingest_counts`` by hour of ``ts``; ``received`` =
  stored + duplicates.

Library functions return :class:`LedgerDay`; the CLI and the API print it.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

import psycopg

from luftnett.collector.arrays import int_array, text_array, time_array
from luftnett.collector.rollups import DayConvention, day_bounds

__all__ = [
    "DEFAULT_LATE_AFTER",
    "DUPLICATES_SQL",
    "INGEST",
    "KEYS_SQL",
    "LEDGER_DEVICES_SQL",
    "LedgerDay",
    "ingest_params",
    "ledger",
    "ledger_day",
    "summarise",
]

DEFAULT_LATE_AFTER = timedelta(hours=1)

#: adds a batch's counts to the completeness ledger: parameters from :func:`ingest_params`
INGEST = """
INSERT INTO ingest_counts AS c (device_id, hour_start, received, stored, duplicates)
SELECT * FROM unnest(%s::text[], %s::timestamptz[], %s::bigint[], %s::bigint[], %s::bigint[])
ON CONFLICT (device_id, hour_start) DO UPDATE SET
    received = c.received + EXCLUDED.received,
    stored = c.stored + EXCLUDED.stored,
    duplicates = c.duplicates + EXCLUDED.duplicates
"""

#: stored readings of a device in [start, end), each with the previous stored seq: the top of
#: the device's received seq ranges cut below the reading's seq (0020: ``seq_ledger``)
KEYS_SQL = """
SELECT r.seq, r.ts, r.received_at,
       upper(l.received * int8multirange(int8range(NULL, r.seq))) - 1 AS prev_seq
FROM readings r LEFT JOIN seq_ledger l ON l.device_id = r.device_id
WHERE r.device_id = %(device)s AND r.ts >= %(start)s AND r.ts < %(end)s
ORDER BY r.seq
"""

#: copies received but not stored, by hour of ts
DUPLICATES_SQL = """
SELECT coalesce(sum(duplicates), 0) AS duplicates FROM ingest_counts
WHERE device_id = %(device)s AND hour_start >= %(start)s AND hour_start < %(end)s
"""

#: devices known to the collector
LEDGER_DEVICES_SQL = "SELECT device_id FROM devices ORDER BY device_id"


@dataclass(frozen=True, slots=True)
class LedgerDay:
    device_id: str
    day: date
    convention: DayConvention
    start: datetime
    end: datetime
    late_after: timedelta
    first_seq: int | None
    last_seq: int | None
    sent: int
    stored: int
    late: int
    duplicates: int
    missing_ranges: tuple[tuple[int, int], ...]

    @property
    def missing(self) -> int:
        return self.sent - self.stored

    @property
    def received(self) -> int:
        return self.stored + self.duplicates

    def as_dict(self) -> dict[str, Any]:
        tz = self.convention.tz
        return {
            "device_id": self.device_id,
            "day": self.day.isoformat(),
            "day_convention": self.convention.value,
            "day_convention_note": self.convention.describe,
            "start": self.start.astimezone(UTC).isoformat(),
            "end": self.end.astimezone(UTC).isoformat(),
            "start_local": self.start.astimezone(tz).isoformat(),
            "end_local": self.end.astimezone(tz).isoformat(),
            "hours": round((self.end - self.start).total_seconds() / 3600),
            "first_seq": self.first_seq,
            "last_seq": self.last_seq,
            "sent": self.sent,
            "received": self.received,
            "stored": self.stored,
            "duplicates": self.duplicates,
            "late": self.late,
            "late_after_s": int(self.late_after.total_seconds()),
            "missing": self.missing,
            "missing_ranges": [list(r) for r in self.missing_ranges],
        }


def summarise(
    device_id: str,
    day: date,
    conv: DayConvention,
    keys: Sequence[tuple[int, datetime, datetime, int | None]],
    duplicates: int,
    late_after: timedelta = DEFAULT_LATE_AFTER,
) -> LedgerDay:
    """Build the ledger of a day from its stored keys ``(seq, ts, received_at, prev_seq)``."""
    start, end = day_bounds(day, conv)
    sent = late = 0
    gaps: list[tuple[int, int]] = []
    for seq, ts, received_at, prev in sorted(keys):
        if prev is None:
            sent += 1
        else:
            sent += seq - prev
            if seq - prev > 1:
                gaps.append((prev + 1, seq - 1))
        if received_at - ts > late_after:
            late += 1
    seqs = [k[0] for k in keys]
    return LedgerDay(
        device_id=device_id,
        day=day,
        convention=conv,
        start=start,
        end=end,
        late_after=late_after,
        first_seq=min(seqs) if seqs else None,
        last_seq=max(seqs) if seqs else None,
        sent=sent,
        stored=len(keys),
        late=late,
        duplicates=duplicates,
        missing_ranges=tuple(gaps),
    )


def ledger_day(
    conn: psycopg.Connection[Any],
    device_id: str,
    day: date,
    conv: DayConvention = DayConvention.DISPLAY,
    late_after: timedelta = DEFAULT_LATE_AFTER,
) -> LedgerDay:
    start, end = day_bounds(day, conv)
    p = {"device": device_id, "start": start, "end": end}
    keys = [(int(r[0]), r[1], r[2], r[3]) for r in conn.execute(KEYS_SQL, p).fetchall()]
    row = conn.execute(DUPLICATES_SQL, p).fetchone()
    return summarise(device_id, day, conv, keys, int(row[0]) if row else 0, late_after)


def ledger(
    conn: psycopg.Connection[Any],
    day: date,
    device_id: str | None = None,
    conv: DayConvention = DayConvention.DISPLAY,
    late_after: timedelta = DEFAULT_LATE_AFTER,
) -> list[LedgerDay]:
    """The ledger of one device, or of every device that stored or dropped readings that day."""
    if device_id is not None:
        return [ledger_day(conn, device_id, day, conv, late_after)]
    out = []
    for (dev,) in conn.execute(LEDGER_DEVICES_SQL).fetchall():
        entry = ledger_day(conn, str(dev), day, conv, late_after)
        if entry.stored or entry.duplicates:
            out.append(entry)
    return out


def ingest_params(
    received: Counter[tuple[str, datetime]],
    stored: Counter[tuple[str, datetime]],
) -> list[str] | None:
    """The parameters of :data:`INGEST`, which adds one batch's received/stored counts per
    (device, UTC hour of ts) to ingest_counts; None when the batch had no readings."""
    keys: Iterable[tuple[str, datetime]] = sorted(received.keys() | stored.keys())
    rows = [
        (d, h, received[(d, h)], stored[(d, h)], received[(d, h)] - stored[(d, h)]) for d, h in keys
    ]
    if not rows:
        return None
    dev, hour, got, kept, dup = zip(*rows, strict=True)
    return [text_array(dev), time_array(hour), int_array(got), int_array(kept), int_array(dup)]
