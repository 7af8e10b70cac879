"""Table names and column tuples: the writer and the API take them from here."""

from __future__ import annotations

from luftnett.contracts.units import COLUMN_QUANTITIES

__all__ = [
    "ANNOTATION_COLUMNS",
    "ANNOTATION_KINDS",
    "ANNOTATION_PERSONAL",
    "ANNOTATION_TIMES",
    "DEVICE_MODELS",
    "NOT_ANNOTATED_INVALID",
    "QC_COLUMNS",
    "QUARANTINE_COLUMNS",
    "READING_COLUMNS",
    "READING_META_COLUMNS",
    "ROLLUP_DAILY_COLUMNS",
    "ROLLUP_HOURLY_COLUMNS",
    "ROLLUP_STATS",
    "VALUE_COLUMNS",
    "WRITE_COLUMNS",
    "rollup_value_columns",
]

#: SQL predicate: the reading ``r`` is outside every active staff annotation that invalidates
#: its device's period. The rule of the ``readings_effective`` view's ANNOTATED_INVALID (migration
#: 0003), as a condition a query can plan as an anti-join (the view tests each reading with a
#: subquery: 3.6x the time of a year's map query, against 1.2x for this; docs/maps.md).
NOT_ANNOTATED_INVALID = """NOT EXISTS (
    SELECT 1 FROM annotations a
    WHERE a.device_id = r.device_id AND a.invalidates AND a.revoked_at IS NULL
      AND r.ts >= a.starts_at AND r.ts < a.ends_at)"""

#: SQL relation (device_id, sensor_model, heard): each device's sensor models, the one it is
#: registered with and every one it has reported through (``device_sensors``), with when it
#: last did (NULL: the registered one, unheard). A box with an SDS011 and the NO2 module has
#: both: SensorThings gives it the Datastreams of both, a map asks whether it measures NO2.
DEVICE_MODELS = """(SELECT dm.device_id, dm.sensor_model, NULL::timestamptz AS heard FROM devices dm
    UNION ALL SELECT ds.device_id, ds.sensor_model, ds.last_ts FROM device_sensors ds)"""

#: measured quantities with a column of their own, in table order
VALUE_COLUMNS: tuple[str, ...] = COLUMN_QUANTITIES

READING_META_COLUMNS: tuple[str, ...] = (
    "device_id",
    "seq",
    "ts",
    "window_s",
    "n_samples",
    "sensor_model",
    "sensor_serial",
)

#: the columns the collector writes, in COPY order
READING_COLUMNS: tuple[str, ...] = (
    *READING_META_COLUMNS,
    *VALUE_COLUMNS,
    "extra",
    "flags",
    "schema_version",
)

QUARANTINE_COLUMNS: tuple[str, ...] = ("source", "topic", "payload", "reason", "detail")

#: quality-control columns the writer adds to each row (migration 0003)
QC_COLUMNS: tuple[str, ...] = ("qc_checks", "qc_version")

#: what the writer COPYs: the contract's row, then quality control
WRITE_COLUMNS: tuple[str, ...] = (*READING_COLUMNS, *QC_COLUMNS)

#: per-quantity statistics in the rollup tables: ``<quantity>_<stat>``
ROLLUP_STATS: tuple[str, ...] = ("n", "sum", "min", "max")


def rollup_value_columns() -> tuple[str, ...]:
    """``pm25_ugm3_n``, ``pm25_ugm3_sum``, ... for every value column, in table order."""
    return tuple(f"{q}_{s}" for q in VALUE_COLUMNS for s in ROLLUP_STATS)


ROLLUP_HOURLY_COLUMNS: tuple[str, ...] = (
    "device_id",
    "hour_start",
    "window_s",
    "n_expected",
    "n_stored",
    "n_valid",
    *rollup_value_columns(),
)

ROLLUP_DAILY_COLUMNS: tuple[str, ...] = (
    "device_id",
    "day_convention",
    "day",
    "day_start",
    "day_end",
    "hours_in_day",
    "hours_with_data",
    "hours_valid",
    "window_s",
    "n_expected",
    "n_stored",
    "n_valid",
    *rollup_value_columns(),
)

ANNOTATION_KINDS: tuple[str, ...] = ("maintenance", "roadworks", "fireworks", "fog", "other")

ANNOTATION_COLUMNS: tuple[str, ...] = (
    "annotation_id",
    "device_id",
    "starts_at",
    "ends_at",
    "kind",
    "invalidates",
    "reason",
    "created_by",
    "created_at",
    "revoked_at",
    "revoked_by",
    "revoke_reason",
)
#: the annotation columns that hold times (outputs give each in UTC and local time)
ANNOTATION_TIMES: tuple[str, ...] = ("starts_at", "ends_at", "created_at", "revoked_at")
#: who made or revoked an annotation: personal data, shown only to API key holders and never
#: published in the open-data archive
ANNOTATION_PERSONAL: tuple[str, ...] = ("created_by", "revoked_by")
