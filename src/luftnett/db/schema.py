"""Table names and column tuples: the writer and the API take them from here."""

from __future__ import annotations

from luftnett.contracts.units import COLUMN_QUANTITIES

__all__ = ["QUARANTINE_COLUMNS", "READING_COLUMNS", "READING_META_COLUMNS", "VALUE_COLUMNS"]

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
