"""Device health: which devices are silent, stuck or reporting sensor faults.

A device is listed when its last contact (``devices.last_seen``) is older than ``silent_after``,
when the newest reading of one of its sensors (within the hour before its newest reading, or two
of its longest window) carries ``stuck`` (the sensor repeats one PM or NO2 value),
``sensor_error`` (the sensor reports a fault) or ``clock_suspect``, or when readings of it went
to quarantine as ``seq_reused`` within the last day and wait there (its numbering started again:
readings at new times under seqs already stored, kept there rather than dropped as copies; the
edge agent numbers on past them at its first confirmation, so the problem shows for a day after
the last such reading, and the records stay for ``luftnett quarantine list``). The CLI
(``luftnett devices health``) and the API (``GET /api/v1/devices/health``) run
:data:`HEALTH_SQL` and :func:`assess`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
from psycopg.rows import dict_row

from luftnett.contracts.units import ReadingFlag
from luftnett.timefmt import utc_local_fields

__all__ = [
    "DEFAULT_SILENT_AFTER",
    "HEALTH_SQL",
    "DeviceHealth",
    "SilentSensor",
    "assess",
    "device_health",
    "silent_sensors",
]

DEFAULT_SILENT_AFTER = timedelta(minutes=15)

#: every device with its last contact, its newest reading's time, the flags of the newest
#: reading of each of its sensors (a device with a PM sensor and a temperature/RH companion
#: sends a reading of each per window) heard from within the hour before that, or two of its
#: longest window if longer (a sensor that averages over hours, beside one that reports every
#: minute: not silent, so its flags count), and its sensors heard from within the 30 days
#: before it (``device_sensors``)
HEALTH_SQL = """
SELECT d.device_id, d.sensor_model, d.last_seen, lr.ts AS last_ts, lf.flags AS last_flags,
       coalesce(q.n, 0) AS seq_reused, ds.sensors
FROM devices d
LEFT JOIN LATERAL (
    SELECT ts FROM readings r WHERE r.device_id = d.device_id ORDER BY ts DESC LIMIT 1
) lr ON true
LEFT JOIN LATERAL (
    SELECT bit_or(s.flags) AS flags FROM (
        SELECT DISTINCT ON (sensor_model, sensor_serial) flags FROM readings r
        WHERE r.device_id = d.device_id AND r.ts <= lr.ts
          AND r.ts > lr.ts - greatest(interval '1 hour', (
                  SELECT 2 * max(s.window_s) * interval '1 second' FROM device_sensors s
                  WHERE s.device_id = d.device_id))
        ORDER BY sensor_model, sensor_serial, ts DESC, seq DESC
    ) s
) lf ON true
LEFT JOIN LATERAL (
    SELECT json_agg(json_build_object(
               'model', s.sensor_model, 'serial', nullif(s.sensor_serial, ''),
               'first_ts', s.first_ts, 'last_ts', s.last_ts, 'window_s', s.window_s)
           ORDER BY s.sensor_model, s.sensor_serial) AS sensors
    FROM device_sensors s
    WHERE s.device_id = d.device_id AND s.last_ts > lr.ts - interval '30 days'
) ds ON true
LEFT JOIN (
    SELECT substring(topic FROM '/v1/([a-z0-9-]+)/readings$') AS device_id, count(*) AS n
    FROM quarantine
    WHERE reason = 'seq_reused' AND replayed_at IS NULL AND received_at > now() - interval '1 day'
    GROUP BY 1
) q ON q.device_id = d.device_id
ORDER BY d.device_id
"""

_PROBLEM_FLAGS = {
    "stuck": ReadingFlag.STUCK,
    "sensor_error": ReadingFlag.SENSOR_ERROR,
    "clock_suspect": ReadingFlag.CLOCK_SUSPECT,
}


@dataclass(frozen=True, slots=True)
class SilentSensor:
    """A sensor of a device that has not reported while the device reports through another."""

    model: str
    serial: str | None
    last_reading: datetime

    def as_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "serial": self.serial,
            **utc_local_fields("last_reading_ts", self.last_reading),
        }


@dataclass(frozen=True, slots=True)
class DeviceHealth:
    device_id: str
    sensor_model: str
    last_seen: datetime
    last_reading: datetime | None
    silent_for: timedelta
    problems: tuple[str, ...]
    silent_sensors: tuple[SilentSensor, ...] = ()

    @property
    def ok(self) -> bool:
        return not self.problems

    def as_dict(self) -> dict[str, Any]:
        return {
            "device_id": self.device_id,
            "sensor_model": self.sensor_model,
            "ok": self.ok,
            "problems": list(self.problems),
            **utc_local_fields("last_seen", self.last_seen),
            "silent_for_s": round(self.silent_for.total_seconds()),
            **utc_local_fields("last_reading_ts", self.last_reading),
            "silent_sensors": [s.as_dict() for s in self.silent_sensors],
        }


def silent_sensors(
    sensors: Iterable[Mapping[str, Any]], newest: datetime | None, silent_after: timedelta
) -> list[SilentSensor]:
    """The sensors (``HEALTH_SQL``'s ``sensors`` of a device) whose newest reading is older
    than the device's newest by more than ``silent_after`` (or two of the sensor's windows,
    if longer): silent while the device reports through another. A sensor whose model
    reported under another serial after it (replaced) is not."""
    if newest is None:
        return []
    seen = [
        (s["model"], s["serial"], _time(s["first_ts"]), _time(s["last_ts"]), float(s["window_s"]))
        for s in sensors
    ]
    out = []
    for model, serial, _first, last, window in seen:
        replaced = any(m == model and f > last for m, _s, f, _l, _w in seen)
        if newest - last > max(silent_after, timedelta(seconds=2 * window)) and not replaced:
            out.append(SilentSensor(model, serial, last))
    return out


def _time(t: str | datetime) -> datetime:
    return t if isinstance(t, datetime) else datetime.fromisoformat(t)


def assess(
    rows: Iterable[Mapping[str, Any]],
    now: datetime,
    silent_after: timedelta = DEFAULT_SILENT_AFTER,
) -> list[DeviceHealth]:
    """Health of each device row of :data:`HEALTH_SQL` at ``now``."""
    out = []
    for r in rows:
        silent_for = max(now - r["last_seen"], timedelta(0))
        problems = []
        if silent_for > silent_after:
            problems.append("silent")
        flags = r["last_flags"] or 0
        problems += [name for name, bit in _PROBLEM_FLAGS.items() if flags & bit]
        if r.get("seq_reused"):
            problems.append("seq_reused")
        # a reading stamped ahead of now (a suspect clock) is not the device's newest here
        newest = None if r["last_ts"] is None else min(r["last_ts"], now)
        quiet = silent_sensors(r.get("sensors") or (), newest, silent_after)
        if quiet:
            problems.append("sensor_silent")
        out.append(
            DeviceHealth(
                device_id=r["device_id"],
                sensor_model=r["sensor_model"],
                last_seen=r["last_seen"],
                last_reading=r["last_ts"],
                silent_for=silent_for,
                problems=tuple(problems),
                silent_sensors=tuple(quiet),
            )
        )
    return out


def device_health(
    conn: psycopg.Connection[Any],
    silent_after: timedelta = DEFAULT_SILENT_AFTER,
    now: datetime | None = None,
) -> list[DeviceHealth]:
    with conn.cursor(row_factory=dict_row) as cur:
        rows = cur.execute(HEALTH_SQL).fetchall()
    return assess(rows, now or datetime.now(UTC), silent_after)
