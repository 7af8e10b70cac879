"""The archive's datasets, their fixed Arrow schemas and their data dictionary.

``raw``: one row per stored reading, the columns of the downloads' ``wide`` shape
(:func:`luftnett.api.export.columns`, the single source of names, units and meanings) plus
``ts_local``; values as stored (PostgreSQL ``real`` -> float32). ``hourly``: one row per
device, UTC hour and pollutant with at least one valid value, from ``rollup_hourly`` and the
calibrated values in force (``calibrated_current``). ``annotations``: the staff annotations
(maintenance, roadworks, fireworks, fog) whose period overlaps the chunk's days, revoked ones
included, without who made them: why readings of ``raw`` carry ``annotated_invalid``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from luftnett.api import export

__all__ = [
    "DATASETS",
    "POLLUTANTS",
    "Dataset",
    "Field",
    "arrow_schema",
    "fields",
]

Dataset = Literal["hourly", "raw", "annotations"]
DATASETS: tuple[Dataset, ...] = ("hourly", "raw", "annotations")

#: reading column -> pollutant code (the ``pollutant=`` partition key of ``hourly``); the
#: openair names of the downloads
POLLUTANTS: dict[str, str] = dict(export.OPENAIR_NAMES)

#: an hourly record is valid with at least this coverage (45 of 60 minutes; as the rollups)
HOURLY_VALID_PCT = 75.0


@dataclass(frozen=True, slots=True)
class Field:
    name: str
    #: "string", "int64", "float32", "float64", "bool", "timestamp" (UTC), "local" (wall clock)
    arrow: str
    unit: str | None
    description: str


def _raw_fields(timezone: str) -> list[Field]:
    out: list[Field] = []
    for c in export.columns("wide", True, 1.0):
        if c.name == "ts_local":  # the download's is in Europe/Oslo; the archive's in its own
            continue
        arrow = "float32" if c.arrow == "float64" else c.arrow
        out.append(Field(c.name, arrow, c.unit, c.description))
        if c.name == "ts":
            out.append(
                Field(
                    "ts_local",
                    "local",
                    None,
                    f"window end as wall-clock time in {timezone} (ambiguous in the repeated "
                    "hour of the autumn DST change: ts is authoritative)",
                )
            )
    return out


def _hourly_fields(timezone: str) -> list[Field]:
    u = "unit column"
    return [
        Field("device_id", "string", None, "device id"),
        Field("site_id", "string", None, "site of the deployment at hour_start, empty if none"),
        Field("hour_start", "timestamp", None, "start of the UTC hour [hour_start, +1 h)"),
        Field("hour_start_local", "local", None, f"hour_start as wall-clock time in {timezone}"),
        Field("unit", "string", None, "unit of mean, min, max, mean_calibrated, uncertainty"),
        Field("window_s", "float32", "s", "averaging window of the readings (shortest seen)"),
        Field("n_expected", "int64", None, "readings expected in the hour (3600 / window_s)"),
        Field(
            "n_stored",
            "int64",
            None,
            "readings stored in the hour (any quantity, any of the device's sensors)",
        ),
        Field(
            "n_valid",
            "int64",
            None,
            "stored readings without an invalidating flag (any of the device's sensors)",
        ),
        Field(
            "coverage_pct", "float64", "%", "100 × n / n_expected: the coverage of this pollutant"
        ),
        Field("n", "int64", None, "valid readings with a value of this pollutant"),
        Field("mean", "float64", u, "mean of the valid raw values"),
        Field("min", "float32", u, "smallest valid raw value"),
        Field("max", "float32", u, "largest valid raw value"),
        Field(
            "mean_calibrated",
            "float64",
            u,
            "mean of the valid calibrated values (calibration version in force at each "
            "reading); empty when the pollutant is not calibrated",
        ),
        Field(
            "uncertainty",
            "float64",
            u,
            "standard uncertainty of mean_calibrated: the mean of the readings' standard "
            "uncertainties (errors taken as fully correlated within the hour: conservative)",
        ),
        Field(
            "calibration_id",
            "int64",
            None,
            "calibration version of mean_calibrated (the newest, if the hour has several)",
        ),
        Field("n_calibrated", "int64", None, "valid readings with a calibrated value"),
        Field(
            "valid",
            "bool",
            None,
            f"coverage_pct >= {HOURLY_VALID_PCT:g} (45 minutes of valid data), as the rollups",
        ),
    ]


def _annotation_fields(timezone: str) -> list[Field]:
    out = [
        Field("annotation_id", "int64", None, "annotation id (one annotation may span months)"),
        Field("device_id", "string", None, "the annotated device"),
    ]
    for name, what in (
        ("starts_at", "start of the annotated period"),
        ("ends_at", "end of the annotated period (exclusive)"),
    ):
        out += [
            Field(name, "timestamp", None, f"{what}, UTC"),
            Field(f"{name}_local", "local", None, f"{what} as wall-clock time in {timezone}"),
        ]
    return [
        *out,
        Field("kind", "string", None, "maintenance, roadworks, fireworks, fog or other"),
        Field(
            "invalidates",
            "bool",
            None,
            "the period's readings carry annotated_invalid and are not valid while active",
        ),
        Field("reason", "string", None, "why, in the staff's words"),
        Field("created_at", "timestamp", None, "when the annotation was made, UTC"),
        Field("revoked_at", "timestamp", None, "when it was revoked, UTC; empty if active"),
        Field("revoke_reason", "string", None, "why it was revoked"),
        Field("active", "bool", None, "not revoked"),
    ]


def fields(dataset: Dataset, timezone: str = "Europe/Oslo") -> list[Field]:
    """The columns of a dataset's files, in order, with unit and meaning."""
    if dataset == "annotations":
        return _annotation_fields(timezone)
    return _raw_fields(timezone) if dataset == "raw" else _hourly_fields(timezone)


def arrow_schema(
    dataset: Dataset,
    timezone: str = "Europe/Oslo",
    unit: str | None = None,
    metadata: dict[str, str] | None = None,
) -> Any:
    """The fixed Arrow schema of a dataset; ``unit`` fills the hourly value columns' unit."""
    import pyarrow as pa  # type: ignore[import-untyped]

    types = {
        "string": pa.string(),
        "int64": pa.int64(),
        "float32": pa.float32(),
        "float64": pa.float64(),
        "bool": pa.bool_(),
        "timestamp": pa.timestamp("us", tz="UTC"),
        "local": pa.timestamp("us"),
    }
    out = []
    for f in fields(dataset, timezone):
        meta = {"description": f.description}
        f_unit = unit if f.unit == "unit column" else f.unit
        if f_unit:
            meta["unit"] = f_unit
        out.append(pa.field(f.name, types[f.arrow], metadata=meta))
    return pa.schema(out, metadata=metadata)
