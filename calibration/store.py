"""Calibration in the database (migration 0010): reference data, versions, activations.

This is the I/O side; the numpy core (model, fit, evaluate) never imports it.

* :func:`import_observations` upserts hourly reference values. A validated value replaces a
  provisional one; a provisional value never replaces a validated one. Where validated values
  replaced provisional ones inside the data window of a calibration version fitted on that
  station and pollutant, the version is marked ``refit-needed`` (its only mutable fields).
* :func:`insert_version` stores a new version; versions are never changed or deleted (a
  trigger refuses it), so every calibrated value can name the exact model that made it.
* :func:`activate` makes a version current for its device from a date on.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg
from psycopg.types.json import Json, Jsonb

from luftnett.calibration.model import CalibrationModel
from luftnett.calibration.reference import ReferenceObservation, ReferenceStation
from luftnett.errors import CalibrationError, StorageError

__all__ = [
    "ImportResult",
    "Version",
    "activate",
    "device_activations",
    "fleet_activations",
    "get_version",
    "import_observations",
    "insert_version",
    "list_versions",
    "station_exists",
    "upsert_station",
]

log = logging.getLogger(__name__)

_UPSERT_STATION = """
INSERT INTO reference_stations (station_id, name, provider, lat, lon, pollutants, attribution)
VALUES (%(station_id)s, %(name)s, %(provider)s, %(lat)s, %(lon)s, %(pollutants)s, %(attribution)s)
ON CONFLICT (station_id) DO UPDATE SET
    name = EXCLUDED.name,
    provider = EXCLUDED.provider,
    lat = COALESCE(EXCLUDED.lat, reference_stations.lat),
    lon = COALESCE(EXCLUDED.lon, reference_stations.lon),
    pollutants = ARRAY(SELECT DISTINCT unnest(reference_stations.pollutants || EXCLUDED.pollutants)
                       ORDER BY 1),
    attribution = COALESCE(EXCLUDED.attribution, reference_stations.attribution),
    updated_at = now()
"""

_CREATE_TMP = """
CREATE TEMP TABLE IF NOT EXISTS incoming_reference (
    pollutant text, hour_start timestamptz, value double precision, status text
) ON COMMIT DELETE ROWS
"""

# Which hours a validated value now replaces a provisional one (read before the upsert).
_NEWLY_VALIDATED = """
SELECT i.pollutant, min(i.hour_start), max(i.hour_start), count(*)
FROM incoming_reference i
JOIN reference_observations o
  ON o.station_id = %(station)s AND o.pollutant = i.pollutant AND o.hour_start = i.hour_start
WHERE o.status = 'provisional' AND i.status = 'validated'
GROUP BY i.pollutant
"""

_UPSERT_OBS = """
INSERT INTO reference_observations AS o (station_id, pollutant, hour_start, value, status, source)
SELECT DISTINCT ON (pollutant, hour_start) %(station)s, pollutant, hour_start, value, status,
       %(source)s
FROM incoming_reference
ORDER BY pollutant, hour_start, (status = 'validated') DESC
ON CONFLICT (station_id, pollutant, hour_start) DO UPDATE SET
    value = EXCLUDED.value, status = EXCLUDED.status, source = EXCLUDED.source,
    imported_at = now()
WHERE NOT (o.status = 'validated' AND EXCLUDED.status = 'provisional')
  AND (o.value, o.status) IS DISTINCT FROM (EXCLUDED.value, EXCLUDED.status)
RETURNING (xmax = 0) AS inserted
"""

# Versions whose data window (training and hold-out) holds a newly validated hour.
_MARK_REFIT = """
UPDATE calibration_versions v
SET status = 'refit-needed', status_changed_at = now(),
    status_reason = format('%%s validated reference hours of %%s replaced provisional ones in '
                           'the data window (%%s … %%s)', %(n)s, %(station)s,
                           %(lo)s::timestamptz, %(hi)s::timestamptz)
WHERE v.reference_station_id = %(station)s AND v.pollutant = %(pollutant)s
  AND v.status = 'ok'
  AND v.trained_from <= %(hi)s
  AND coalesce(v.evaluated_to, v.trained_to) > %(lo)s
RETURNING v.version_id
"""


@dataclass(frozen=True, slots=True)
class ImportResult:
    received: int
    inserted: int
    updated: int
    unchanged: int
    newly_validated: int
    versions_marked: tuple[int, ...]
    #: values of an hour already among ``observations`` (one of them is kept, validated
    #: first); ``received - duplicates = inserted + updated + unchanged``
    duplicates: int = 0


def upsert_station(conn: psycopg.Connection[Any], station: ReferenceStation) -> None:
    conn.execute(
        _UPSERT_STATION,
        {
            "station_id": station.station_id,
            "name": station.name,
            "provider": station.provider,
            "lat": station.lat,
            "lon": station.lon,
            "pollutants": list(station.pollutants),
            "attribution": station.attribution,
        },
    )


def station_exists(conn: psycopg.Connection[Any], station_id: str) -> bool:
    """Is ``station_id`` a stored reference station?"""
    found = conn.execute("SELECT 1 FROM reference_stations WHERE station_id = %s", (station_id,))
    return found.fetchone() is not None


def import_observations(
    conn: psycopg.Connection[Any],
    station_id: str,
    observations: Sequence[ReferenceObservation],
    source: str,
) -> ImportResult:
    """Upsert ``observations`` of a known station in one transaction; mark versions to refit."""
    with conn.transaction():
        if not station_exists(conn, station_id):
            raise CalibrationError(
                f"unknown reference station {station_id!r}; import it with --name (and --lat, "
                "--lon) first, or fetch it from NILU"
            )
        conn.execute(_CREATE_TMP)
        with conn.cursor() as cur:
            with cur.copy(
                "COPY incoming_reference (pollutant, hour_start, value, status) FROM STDIN"
            ) as copy:
                for o in observations:
                    copy.write_row((o.pollutant, o.hour_start, o.value, o.status))
            validated = cur.execute(_NEWLY_VALIDATED, {"station": station_id}).fetchall()
            flags = [r[0] for r in cur.execute(
                _UPSERT_OBS, {"station": station_id, "source": source}
            ).fetchall()]  # fmt: skip
            marked: list[int] = []
            for pollutant, lo, hi, n in validated:
                rows = cur.execute(
                    _MARK_REFIT,
                    {"station": station_id, "pollutant": pollutant, "lo": lo, "hi": hi, "n": n},
                ).fetchall()
                marked += [int(r[0]) for r in rows]
        conn.execute(
            "UPDATE reference_stations SET pollutants = ARRAY(SELECT DISTINCT unnest("
            "pollutants || %s::text[]) ORDER BY 1), updated_at = now() WHERE station_id = %s",
            (sorted({o.pollutant for o in observations}), station_id),
        )
    inserted = sum(1 for f in flags if f)
    distinct = len({(o.pollutant, o.hour_start) for o in observations})
    res = ImportResult(
        received=len(observations),
        duplicates=len(observations) - distinct,
        inserted=inserted,
        updated=len(flags) - inserted,
        unchanged=distinct - len(flags),
        newly_validated=sum(int(r[3]) for r in validated),
        versions_marked=tuple(sorted(set(marked))),
    )
    if marked:
        log.warning(
            "calibrations marked for refit",
            extra={"station": station_id, "versions": list(res.versions_marked)},
        )
    return res


@dataclass(frozen=True, slots=True)
class Version:
    """A stored calibration version (read side)."""

    version_id: int
    device_id: str | None
    sensor_model: str | None
    pollutant: str
    kind: str
    model: CalibrationModel
    metrics: dict[str, Any]
    reference_station_id: str | None
    trained_from: datetime | None
    trained_to: datetime | None
    evaluated_from: datetime | None
    evaluated_to: datetime | None
    created_at: datetime
    created_by: str
    status: str
    status_reason: str | None


_VERSION_COLS = (
    "version_id, device_id, sensor_model, pollutant, kind, model, metrics, reference_station_id, "
    "trained_from, trained_to, evaluated_from, evaluated_to, created_at, created_by, status, "
    "status_reason"
)


def _version(row: tuple[Any, ...]) -> Version:
    model_doc = row[5]
    model = CalibrationModel.from_json(json.dumps(model_doc))
    return Version(row[0], row[1], row[2], row[3], row[4], model, dict(row[6]), *row[7:])


def insert_version(
    conn: psycopg.Connection[Any],
    model: CalibrationModel,
    *,
    pollutant: str,
    created_by: str,
    kind: str = "colocation",
    device_id: str | None = None,
    sensor_model: str | None = None,
    metrics: dict[str, Any] | None = None,
    reference_station_id: str | None = None,
    trained: tuple[datetime, datetime] | None = None,
    evaluated: tuple[datetime, datetime] | None = None,
) -> int:
    """Store ``model`` as a new version and return its id (never replaces one)."""
    from luftnett.contracts.units import QUANTITIES

    unknown = [n for n in (model.sensor, *model.inputs) if n not in QUANTITIES]
    if unknown:
        raise CalibrationError(
            f"model {model.model_id} reads {', '.join(map(repr, unknown))}, which are not "
            "reading quantities; name the sensor and covariates after them (pm25_ugm3, rh_pct, "
            "temperature_c, ...)"
        )
    try:
        row = conn.execute(
            "INSERT INTO calibration_versions (device_id, sensor_model, pollutant, kind, model_id,"
            " model, metrics, reference_station_id, trained_from, trained_to, evaluated_from,"
            " evaluated_to, created_by) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s,"
            " %s) RETURNING version_id",
            (
                device_id, sensor_model, pollutant, kind, model.model_id,
                Json(model.to_dict()), Jsonb(metrics or {}), reference_station_id,
                *(trained or (None, None)), *(evaluated or (None, None)), created_by,
            ),
        ).fetchone()  # fmt: skip
    except psycopg.errors.ForeignKeyViolation as exc:
        raise CalibrationError(
            f"cannot store the version: unknown device {device_id!r} or station "
            f"{reference_station_id!r}"
        ) from exc
    assert row is not None
    return int(row[0])


def get_version(conn: psycopg.Connection[Any], version_id: int) -> Version:
    row = conn.execute(
        f"SELECT {_VERSION_COLS} FROM calibration_versions WHERE version_id = %s",  # noqa: S608
        (version_id,),
    ).fetchone()
    if row is None:
        raise CalibrationError(
            f"no calibration version {version_id}; `luftnett calibrate versions` lists them"
        )
    return _version(row)


def list_versions(conn: psycopg.Connection[Any], device_id: str | None = None) -> list[Version]:
    rows = conn.execute(
        f"SELECT {_VERSION_COLS} FROM calibration_versions "  # noqa: S608
        "WHERE %(d)s::text IS NULL OR device_id = %(d)s ORDER BY version_id",
        {"d": device_id},
    ).fetchall()
    return [_version(r) for r in rows]


def activate(
    conn: psycopg.Connection[Any], version_id: int, valid_from: datetime, created_by: str
) -> int:
    """Make ``version_id`` current for its device (or sensor model) from ``valid_from``."""
    if valid_from.tzinfo is None:
        raise CalibrationError("the activation date must carry a time zone (UTC)")
    v = get_version(conn, version_id)
    if v.status == "retired":
        raise CalibrationError(f"version {version_id} is retired and cannot be activated")
    try:
        row = conn.execute(
            "INSERT INTO calibration_activations (device_id, sensor_model, pollutant, version_id,"
            " valid_from, created_by) VALUES (%s, %s, %s, %s, %s, %s) RETURNING activation_id",
            (v.device_id, v.sensor_model, v.pollutant, version_id, valid_from, created_by),
        ).fetchone()
    except psycopg.Error as exc:  # pragma: no cover - constraint violations only
        raise StorageError(
            f"cannot activate version {version_id}: {exc.diag.message_primary}"
        ) from exc
    assert row is not None
    return int(row[0])


def device_activations(
    conn: psycopg.Connection[Any], device_ids: Sequence[str], pollutants: Sequence[str]
) -> dict[tuple[str, str], list[tuple[datetime, int, int]]]:
    """(valid_from, activation_id, version_id) of the devices' own activations, by (device,
    pollutant), ordered by valid_from and activation_id; a pair with none is missing."""
    rows = conn.execute(
        "SELECT device_id, pollutant, valid_from, activation_id, version_id "
        "FROM calibration_activations WHERE device_id = ANY(%(d)s) AND pollutant = ANY(%(p)s) "
        "ORDER BY 1, 2, 3, 4",
        {"d": list(device_ids), "p": list(pollutants)},
    ).fetchall()
    out: dict[tuple[str, str], list[tuple[datetime, int, int]]] = {}
    for r in rows:
        out.setdefault((r[0], r[1]), []).append((r[2], int(r[3]), int(r[4])))
    return out


def fleet_activations(
    conn: psycopg.Connection[Any],
) -> dict[tuple[str, str], list[tuple[datetime, int, int]]]:
    """(valid_from, activation_id, version_id) of every fleet default's activations, by
    (sensor model, pollutant), ordered by valid_from and activation_id. A fleet default applies
    to the readings of its own sensor model, whatever else their device carries."""
    rows = conn.execute(
        "SELECT sensor_model, pollutant, valid_from, activation_id, version_id "
        "FROM calibration_activations WHERE device_id IS NULL ORDER BY 1, 2, 3, 4"
    ).fetchall()
    out: dict[tuple[str, str], list[tuple[datetime, int, int]]] = {}
    for r in rows:
        out.setdefault((r[0], r[1]), []).append((r[2], int(r[3]), int(r[4])))
    return out
