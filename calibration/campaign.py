"""Fit a calibration on a co-location campaign from the database and store it as a version.

The pairs (:func:`~luftnett.calibration.colocation.hourly_pairs`) are split in time order: the
first ``train_fraction`` of the hours fit the model, the rest judge it (metrics, GDE REU, EPA
targets, CEN class). The stored version carries the model (fitted on the training hours only),
the hold-out metrics, the training and evaluation windows and the reference station.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
import psycopg

from luftnett.calibration.apply_db import POLLUTANT_COLUMNS
from luftnett.calibration.colocation import Pairs, hourly_pairs
from luftnett.calibration.evaluate import Evaluation, evaluate_model
from luftnett.calibration.fit import fit_model
from luftnett.calibration.model import CalibrationModel, ModelMeta
from luftnett.calibration.split import train_test_split
from luftnett.calibration.store import Version, insert_version, station_exists
from luftnett.calibration.targets import default_limit
from luftnett.errors import CalibrationError

__all__ = ["MIN_PAIRS", "CampaignFit", "evaluate_version", "fit_campaign", "unit_of"]

HOUR = timedelta(hours=1)
MIN_PAIRS = 24
BoolArray = npt.NDArray[np.bool_]


def unit_of(pollutant: str) -> str:
    return "ppb" if pollutant in ("no2", "o3") else "µg/m³"


def _limit(pollutant: str) -> float:
    unit: Literal["ugm3", "ppb"] = "ppb" if pollutant in ("no2", "o3") else "ugm3"
    return default_limit(pollutant, unit)  # type: ignore[arg-type]


@dataclass(frozen=True, slots=True, eq=False)
class CampaignFit:
    version_id: int
    model: CalibrationModel
    evaluation: Evaluation
    pairs: Pairs
    train: BoolArray


def _usable(pairs: Pairs, model_name: str) -> BoolArray:
    ok = np.isfinite(pairs.reference) & np.isfinite(pairs.sensor)
    if model_name in ("epa-pa", "kohler", "multilinear", "robust"):
        ok &= np.isfinite(pairs.rh_pct)
    if model_name in ("multilinear", "robust"):
        ok &= np.isfinite(pairs.temperature_c)
    return ok


def _subset(p: Pairs, m: BoolArray) -> Pairs:
    return Pairs(
        hours=tuple(h for h, k in zip(p.hours, m, strict=True) if k),
        reference=p.reference[m],
        sensor=p.sensor[m],
        rh_pct=p.rh_pct[m],
        temperature_c=p.temperature_c[m],
        status=tuple(s for s, k in zip(p.status, m, strict=True) if k),
    )


def _evaluate(model: CalibrationModel, pairs: Pairs, test: BoolArray, pollutant: str) -> Evaluation:
    return evaluate_model(
        model,
        pairs.reference[test],
        pairs.sensor[test],
        {k: v for k, v in pairs.covariates(test).items() if k in model.inputs},
        limit=_limit(pollutant),
        pollutant=pollutant,  # type: ignore[arg-type]
    )


def _require_known(conn: psycopg.Connection[Any], device_id: str, station_id: str) -> None:
    """Say which of the two does not exist, rather than that they share no hours."""
    if conn.execute("SELECT 1 FROM devices WHERE device_id = %s", (device_id,)).fetchone() is None:
        raise CalibrationError(
            f"no device {device_id!r} in the database; check the id (`luftnett devices health` "
            "lists them)"
        )
    if not station_exists(conn, station_id):
        raise CalibrationError(
            f"no reference station {station_id!r} in the database; import it with `luftnett "
            "reference import --name` or `luftnett reference fetch`, or check the id "
            "(`luftnett calibrate colocations` lists stations near devices)"
        )


def fit_campaign(
    conn: psycopg.Connection[Any],
    device_id: str,
    station_id: str,
    pollutant: str,
    start: datetime,
    end: datetime,
    model_name: str,
    created_by: str,
    train_fraction: float = 0.7,
) -> CampaignFit:
    """Pair, split, fit, evaluate on the hold-out and store a new version (in one transaction)."""
    name = "multilinear" if model_name == "mlr" else model_name
    if pollutant not in POLLUTANT_COLUMNS:
        raise CalibrationError(
            f"unknown pollutant {pollutant!r}; use {', '.join(POLLUTANT_COLUMNS)}"
        )
    if name in ("epa-pa", "kohler") and pollutant != "pm25":
        raise CalibrationError(f"model {model_name} is for PM2.5 only")
    pairs = hourly_pairs(conn, device_id, station_id, pollutant, start, end)
    pairs = _subset(pairs, _usable(pairs, name))
    if len(pairs) < MIN_PAIRS:
        _require_known(conn, device_id, station_id)
        raise CalibrationError(
            f"{device_id} and {station_id} share {len(pairs)} complete hours of {pollutant} "
            f"between {start:%Y-%m-%d} and {end:%Y-%m-%d}; need at least {MIN_PAIRS} "
            "(import reference data, or widen --from/--to)"
        )
    train = train_test_split(len(pairs), train_fraction, "chronological")
    test = ~train
    hours = np.array(pairs.hours, dtype=object)
    t_train, t_test = hours[train], hours[test]
    column = POLLUTANT_COLUMNS[pollutant]
    meta = ModelMeta(
        sensor=column,
        unit=unit_of(pollutant),
        sensor_unit=unit_of(pollutant),
        reference_station=station_id,
        trained_from=t_train[0].isoformat(),
        trained_to=(t_train[-1] + HOUR).isoformat(),
    )
    model = fit_model(
        name,  # type: ignore[arg-type]  # checked by the CLI's choice
        pairs.sensor[train],
        pairs.reference[train],
        pairs.covariates(train),
        rh="rh_pct",
        temperature="temperature_c",
        meta=meta,
    )
    ev = _evaluate(model, pairs, test, pollutant)
    metrics = {k: v for k, v in ev.as_dict().items() if k != "model"}
    metrics.update(
        n_pairs=len(pairs),
        n_train=int(train.sum()),
        validated_pct=100.0 * sum(s == "validated" for s in pairs.status) / len(pairs),
        split=f"chronological, first {train_fraction:.0%} of hours",
        model_name=model_name,
    )
    with conn.transaction():
        vid = insert_version(
            conn,
            model,
            pollutant=pollutant,
            created_by=created_by,
            device_id=device_id,
            metrics=metrics,
            reference_station_id=station_id,
            trained=(t_train[0], t_train[-1] + HOUR),
            evaluated=(t_test[0], t_test[-1] + HOUR),
        )
    return CampaignFit(vid, model, ev, pairs, train)


def evaluate_version(
    conn: psycopg.Connection[Any], version: Version
) -> tuple[Evaluation, Pairs, BoolArray]:
    """Re-pair a co-location version's data window and evaluate it on its hold-out hours."""
    if version.device_id is None or version.reference_station_id is None:
        raise CalibrationError(
            f"version {version.version_id} is a fleet default without a co-location; "
            "nothing to report against"
        )
    assert version.trained_from is not None
    assert version.trained_to is not None
    end = version.evaluated_to or version.trained_to
    pairs = hourly_pairs(
        conn, version.device_id, version.reference_station_id, version.pollutant,
        version.trained_from, end,
    )  # fmt: skip
    model = version.model
    ok = np.isfinite(pairs.reference) & np.isfinite(pairs.sensor)
    for name in model.inputs:
        ok &= np.isfinite(pairs.covariates()[name])
    pairs = _subset(pairs, ok)
    train = np.array([h < version.trained_to for h in pairs.hours], dtype=np.bool_)
    if train.all() or len(pairs) < 3:
        raise CalibrationError(f"version {version.version_id}: no hold-out hours left to evaluate")
    return _evaluate(model, pairs, ~train, version.pollutant), pairs, train
