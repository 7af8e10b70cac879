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
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

import psycopg
from psycopg.rows import dict_row

from luftnett.collector.arrays import int_array, text_array, time_array
from luftnett.collector.rollups import DayConvention, day_bounds

__all__ = [
    "DEFAULT_LATE_AFTER",
    "INGEST",
    "LEDGER_SQL",
    "MAX_DAYS",
    "LedgerDay",
    "ingest_params",
    "ledger",
    "ledger_day",
    "ledger_entries",
    "ledger_params",
]

DEFAULT_LATE_AFTER = timedelta(hours=1)
#: the longest span of days one ledger request covers (a quarter)
MAX_DAYS = 92

#: adds a batch's counts to the completeness ledger: parameters from :func:`ingest_params`
INGEST = """
INSERT INTO ingest_counts AS c (device_id, hour_start, received, stored, duplicates)
SELECT * FROM unnest(%s::text[], %s::timestamptz[], %s::bigint[], %s::bigint[], %s::bigint[])
ON CONFLICT (device_id, hour_start) DO UPDATE SET
    received = c.received + EXCLUDED.received,
    stored = c.stored + EXCLUDED.stored,
    duplicates = c.duplicates + EXCLUDED.duplicates
"""

#: the ledger of a span of days in one query: per (device, day) with stored or dropped readings,
#: the day's counts and its missing seq ranges. Each stored reading's previous stored seq is
#: seq - 1 when the span holds that reading; otherwise (a device's first reading in the span, a
#: gap, a neighbour whose ts lies outside the span) the top of the device's received seq ranges
#: cut below the reading's seq (0020: ``seq_ledger``), which costs in proportion to the device's
#: ranges and so is looked up only there. A gap counts on the day of the reading after it.
#: Duplicates are counted by the writer per UTC hour of ts (``ingest_counts``); days of either
#: convention are whole hours.
#: Parameters: devices (text[], NULL for all), start and end (UTC bounds of the first and last
#: day), tz (the convention's zone for the day of a time), late_after (interval).
LEDGER_SQL = """
WITH r AS (
    SELECT r.device_id, r.seq, r.ts, r.received_at,  -- readings' device_id: bytewise ("C")
           lag(r.seq) OVER (PARTITION BY r.device_id ORDER BY r.seq) AS before
    FROM devices dv
    CROSS JOIN LATERAL (  -- by the (device_id, ts) index, device by device
        SELECT r.device_id, r.seq, r.ts, r.received_at FROM readings r
        WHERE r.device_id = dv.device_id AND r.ts >= %(start)s AND r.ts < %(end)s
    ) r
    WHERE %(devices)s::text[] IS NULL OR dv.device_id = ANY (%(devices)s::text[])
), k AS (
    SELECT r.device_id, (r.ts AT TIME ZONE %(tz)s)::date AS day, r.seq,
           r.received_at - r.ts > %(late_after)s AS late,
           CASE WHEN r.before = r.seq - 1 THEN r.before  -- the common case, and cheap
           ELSE upper(l.received * int8multirange(int8range(NULL, r.seq))) - 1
           END AS prev_seq
    FROM r LEFT JOIN seq_ledger l ON l.device_id = r.device_id
), s AS (
    SELECT device_id, day, count(*) AS stored, sum(coalesce(seq - prev_seq, 1)) AS sent,
           count(*) FILTER (WHERE late) AS late, min(seq) AS first_seq, max(seq) AS last_seq,
           array_agg(ARRAY[prev_seq + 1, seq - 1] ORDER BY seq)
               FILTER (WHERE seq - prev_seq > 1) AS gaps
    FROM k GROUP BY device_id, day
), d AS (
    SELECT device_id, (hour_start AT TIME ZONE %(tz)s)::date AS day, sum(duplicates) AS duplicates
    FROM ingest_counts
    WHERE hour_start >= %(start)s AND hour_start < %(end)s
      AND (%(devices)s::text[] IS NULL OR device_id = ANY (%(devices)s::text[]))
    GROUP BY 1, 2 HAVING sum(duplicates) > 0
)
SELECT device_id, day, coalesce(s.stored, 0) AS stored, coalesce(s.sent, 0) AS sent,
       coalesce(s.late, 0) AS late, s.first_seq, s.last_seq, s.gaps,
       coalesce(d.duplicates, 0) AS duplicates
FROM s FULL JOIN d USING (device_id, day)
ORDER BY device_id, day
"""

#: the zone whose calendar gives a time's day, as PostgreSQL names it ('Etc/GMT-1' is UTC+01:00:
#: POSIX names count west of Greenwich)
_SQL_TZ = {"utc+01": "Etc/GMT-1", "Europe/Oslo": "Europe/Oslo"}


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


def ledger_params(
    first_day: date,
    last_day: date,
    devices: Sequence[str] | None,
    conv: DayConvention,
    late_after: timedelta,
) -> dict[str, Any]:
    """The parameters of :data:`LEDGER_SQL` for the days ``first_day`` to ``last_day``."""
    return {
        "devices": None if devices is None else list(devices),
        "start": day_bounds(first_day, conv)[0],
        "end": day_bounds(last_day, conv)[1],
        "tz": _SQL_TZ[conv.value],
        "late_after": late_after,
    }


def ledger_entries(
    rows: Iterable[Mapping[str, Any]],
    first_day: date,
    last_day: date,
    devices: Sequence[str] | None,
    conv: DayConvention,
    late_after: timedelta,
) -> list[LedgerDay]:
    """:class:`LedgerDay` entries from the rows of :data:`LEDGER_SQL`, ordered by device and day.

    Named ``devices`` get an entry for every day, empty ones included (a day without a
    reading is part of their record); without, only the (device, day) pairs that stored or
    dropped readings are listed."""
    found: dict[tuple[str, date], LedgerDay] = {}
    for r in rows:
        day: date = r["day"]
        start, end = day_bounds(day, conv)
        found[(r["device_id"], day)] = LedgerDay(
            device_id=r["device_id"],
            day=day,
            convention=conv,
            start=start,
            end=end,
            late_after=late_after,
            first_seq=r["first_seq"],
            last_seq=r["last_seq"],
            sent=int(r["sent"]),
            stored=int(r["stored"]),
            late=int(r["late"]),
            duplicates=int(r["duplicates"]),
            missing_ranges=tuple((int(a), int(b)) for a, b in r["gaps"] or ()),
        )
    if devices is None:
        return list(found.values())
    days = [first_day + timedelta(days=i) for i in range((last_day - first_day).days + 1)]
    return [
        found.get((dev, day)) or _empty(dev, day, conv, late_after)
        for dev in sorted(set(devices))
        for day in days
    ]


def _empty(device_id: str, day: date, conv: DayConvention, late_after: timedelta) -> LedgerDay:
    start, end = day_bounds(day, conv)
    return LedgerDay(device_id, day, conv, start, end, late_after, None, None, 0, 0, 0, 0, ())


def ledger(
    conn: psycopg.Connection[Any],
    day: date,
    device_id: str | None = None,
    conv: DayConvention = DayConvention.DISPLAY,
    late_after: timedelta = DEFAULT_LATE_AFTER,
    days: int = 1,
) -> list[LedgerDay]:
    """The ledger of the ``days`` days ending with ``day``: of one device (every day), or of
    every device and day that stored or dropped readings. One query, whatever the fleet."""
    if days < 1:
        raise ValueError(f"days must be at least 1, not {days}")
    first = day - timedelta(days=days - 1)
    devices = None if device_id is None else [device_id]
    params = ledger_params(first, day, devices, conv, late_after)
    with conn.transaction(), conn.cursor(row_factory=dict_row) as cur:
        # a fleet's day is costed high enough for JIT, which then compiles for ~1 s of 4
        # (docs/benchmarks.md, "Completeness ledger"); the API's connections have it off
        cur.execute("SET LOCAL jit = off")
        rows = cur.execute(LEDGER_SQL, params).fetchall()
    return ledger_entries(rows, first, day, devices, conv, late_after)


def ledger_day(
    conn: psycopg.Connection[Any],
    device_id: str,
    day: date,
    conv: DayConvention = DayConvention.DISPLAY,
    late_after: timedelta = DEFAULT_LATE_AFTER,
) -> LedgerDay:
    (entry,) = ledger(conn, day, device_id, conv, late_after)
    return entry


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
