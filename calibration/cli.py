"""``luftnett calibrate``: fit and evaluate calibrations on any paired CSV, without a database.

Errors are :class:`~luftnett.errors.LuftnettError` subclasses; the main group prints them as one
line and exits 1. numpy and scipy are imported inside the commands so ``--help`` stays instant.
"""

from __future__ import annotations

import contextlib
import json
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from luftnett.errors import CalibrationError, ConfigError

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

    from luftnett.calibration.model import CalibrationModel
    from luftnett.calibration.table import Table

__all__ = ["calibrate"]

F = TypeVar("F", bound=Callable[..., Any])
MODELS = ("linear", "multilinear", "mlr", "robust", "epa-pa", "kohler")


@click.group()
def calibrate() -> None:
    """Fit and evaluate sensor calibrations: on a paired CSV (no database), or on co-locations
    stored in the database (fit --device, activate, versions, report, reprocess, drift).

    Example:  luftnett calibrate evaluate --csv colo.csv --reference NO2 --sensor LCS1
    """


def _data_options(f: F, database: bool = False) -> F:
    """Options shared by ``fit`` and ``evaluate``: the file, its columns and its format.

    With ``database`` (``fit``), --csv and --sensor are optional: --device fits from the
    database instead, and --reference names the reference station.
    """
    opts = [
        click.option(
            "--csv", "csv_path", required=not database, help="Paired data, a CSV with a header."
        ),
        click.option(
            "--reference",
            required=True,
            help="Column of the reference values"
            + (" (with --device: the reference station id)." if database else "."),
        ),
        click.option(
            "--sensor", required=not database, help="Column of the sensor values to calibrate."
        ),
        click.option(
            "--covariates",
            default="",
            help="Comma-separated extra columns (RH, T, cross-gas sensors) for multilinear/robust.",
        ),
        click.option("--rh", "rh_col", help="Relative humidity column, % (epa-pa, kohler)."),
        click.option("--temp", "temp_col", help="Air temperature column, °C."),
        click.option(
            "--abs-humidity",
            is_flag=True,
            help="Add absolute humidity from --temp and --rh as a term (multilinear/robust).",
        ),
        click.option(
            "--model",
            "model_name",
            type=click.Choice(MODELS),
            default="linear",
            show_default=True,
            help="Model family; mlr = multilinear; robust = multilinear with a Huber loss.",
        ),
        click.option("--time", "time_col", help="Time column (ISO 8601); rows are sorted by it."),
        click.option("--time-format", help="strptime format of --time if not ISO, e.g. %d/%m/%Y."),
        click.option("--delimiter", default=",", show_default=True, help="Field separator; 'tab'."),
        click.option("--decimal", default=".", show_default=True, help="Decimal mark, e.g. ','."),
        click.option(
            "--na",
            "na_tokens",
            multiple=True,
            help="Extra missing-value marker, repeatable, e.g. --na -200. Empty/NA/NaN always are.",
        ),
        click.option("--unit", default="", help="Unit of the reference and output, e.g. ppb."),
    ]
    for opt in reversed(opts):
        f = opt(f)
    return f


#: which models use each option (the others ignore it)
_USED_BY: dict[str, tuple[str, ...]] = {
    "--covariates": ("multilinear", "mlr", "robust"),
    "--rh": ("multilinear", "mlr", "robust", "epa-pa", "kohler"),
    "--temp": ("multilinear", "mlr", "robust"),
    "--abs-humidity": ("multilinear", "mlr", "robust"),
}


def _warn_ignored(
    model_name: str,
    covariates: str,
    rh_col: str | None,
    temp_col: str | None,
    abs_humidity: bool,
) -> None:
    """A warning on stderr for each given option that ``model_name`` does not use."""
    given = {
        "--covariates": covariates.strip() or None,
        "--rh": rh_col,
        "--temp": temp_col,
        "--abs-humidity": "" if abs_humidity else None,
    }
    for opt, value in given.items():
        if value is not None and model_name not in _USED_BY[opt]:
            shown = f"{opt} {value}" if value else opt
            click.echo(
                f"warning: {shown} is ignored by --model {model_name}; "
                f"{', '.join(_USED_BY[opt])} use it",
                err=True,
            )


@dataclass(frozen=True, slots=True)
class _Data:
    table: Table
    reference: str
    sensor: str
    covariates: tuple[str, ...]
    source: str

    def cov(self, mask: npt.NDArray[np.bool_] | None = None) -> dict[str, npt.NDArray[np.float64]]:
        cols = self.table.columns
        return {c: cols[c] if mask is None else cols[c][mask] for c in self.covariates}


def _load(
    csv_path: str,
    reference: str,
    sensor: str,
    covariates: str,
    rh_col: str | None,
    temp_col: str | None,
    model_name: str,
    time_col: str | None,
    time_format: str | None,
    delimiter: str,
    decimal: str,
    na_tokens: tuple[str, ...],
) -> _Data:
    from luftnett.calibration.table import open_csv, read_table

    path = Path(csv_path)
    cov = [c.strip() for c in covariates.split(",") if c.strip()]
    if model_name in ("epa-pa", "kohler"):
        if rh_col is None:
            raise ConfigError(f"--model {model_name} needs --rh COLUMN (relative humidity, %)")
        cov = [rh_col]
    elif model_name == "linear":
        cov = []
    else:
        cov += [c for c in (rh_col, temp_col) if c is not None and c not in cov]
    delim = "\t" if delimiter.lower() in ("tab", "\\t") else delimiter
    if len(delim) != 1 or len(decimal) != 1:
        raise ConfigError("--delimiter and --decimal must be single characters")
    with open_csv(csv_path) as fh:
        table = read_table(
            fh,
            list(dict.fromkeys([reference, sensor, *cov])),
            delimiter=delim,
            decimal=decimal,
            na=na_tokens,
            time_column=time_col,
            time_format=time_format,
            source=path.name,
        )
    if len(table) < 3:
        missing = ", ".join(f"{c} {n}" for c, n in table.missing.items())
        raise CalibrationError(
            f"{path.name}: {len(table)} complete rows of {table.rows_read} "
            f"(missing values per column: {missing}); need at least 3"
        )
    return _Data(table, reference, sensor, tuple(cov), path.name)


def _fit(
    data: _Data,
    mask: npt.NDArray[np.bool_] | None,
    model_name: str,
    rh_col: str | None,
    temp_col: str | None,
    abs_humidity: bool,
    unit: str,
    reference_station: str | None = None,
) -> CalibrationModel:
    from luftnett.calibration.fit import fit_model
    from luftnett.calibration.model import ModelMeta

    cols = data.table.columns
    times = data.table.times
    window: tuple[str | None, str | None] = (None, None)
    if times is not None:
        sel = [t for t, m in zip(times, mask, strict=True) if m] if mask is not None else times
        if sel:
            window = (sel[0].isoformat(), sel[-1].isoformat())
    meta = ModelMeta(data.sensor, unit, "", reference_station, *window)
    return fit_model(
        model_name,  # type: ignore[arg-type]  # checked by click.Choice
        cols[data.sensor] if mask is None else cols[data.sensor][mask],
        cols[data.reference] if mask is None else cols[data.reference][mask],
        data.cov(mask),
        rh=rh_col,
        temperature=temp_col,
        abs_humidity=abs_humidity,
        meta=meta,
    )


@calibrate.command()
@_data_options
@click.option(
    "--split",
    type=click.Choice(["chronological", "random"]),
    default="chronological",
    show_default=True,
    help="Train/test split; random hides drift and is reported as a warning.",
)
@click.option(
    "--train-fraction",
    type=click.FloatRange(0, 1, min_open=True, max_open=True),
    default=0.5,
    show_default=True,
    help="Share of the rows (in time order) used for fitting.",
)
@click.option(
    "--split-at",
    help="With --time: train before this time (ISO 8601 or --time-format), test from it on.",
)
@click.option(
    "--seed",
    type=click.IntRange(min=0),
    default=0,
    show_default=True,
    help="Seed of a random split.",
)
@click.option("--limit", type=float, help="Limit value for the REU, in the file's units.")
@click.option(
    "--u-ref",
    type=click.FloatRange(min=0),
    default=0.0,
    show_default=True,
    help="Standard uncertainty of the reference (GDE u(x_ref)), file units.",
)
@click.option(
    "--pollutant",
    type=click.Choice(["pm25", "pm10", "no2", "o3"]),
    help="Check the EPA targets and the CEN/TS 17660 class; sets --limit if absent.",
)
@click.option(
    "--model-file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Evaluate this saved model (from `calibrate fit`) on every row instead of fitting.",
)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead of a table.")
def evaluate(
    csv_path: str,
    reference: str,
    sensor: str,
    covariates: str,
    rh_col: str | None,
    temp_col: str | None,
    abs_humidity: bool,
    model_name: str,
    time_col: str | None,
    time_format: str | None,
    delimiter: str,
    decimal: str,
    na_tokens: tuple[str, ...],
    unit: str,
    split: str,
    train_fraction: float,
    split_at: str | None,
    seed: int,
    limit: float | None,
    u_ref: float,
    pollutant: str | None,
    model_file: Path | None,
    as_json: bool,
) -> None:
    """Fit on the first part of a paired file and report metrics on the rest.

    Rows with a missing value in any used column are dropped and counted. The test part gets
    RMSE, MBE, MAE, r, R², OLS and orthogonal slope/intercept, the REU at --limit (EC Guide to
    the Demonstration of Equivalence, 2010), the REU curve, the US-EPA 2021 targets and the
    CEN/TS 17660 class (with --pollutant). With --pollutant and no --limit, the limit is the
    EU one (NO2 40 µg/m³, PM2.5 30, PM10 50, O3 120), converted to ppb when --unit is ppb.

    Example:  luftnett calibrate evaluate --csv Fig5.csv --reference NO2 --sensor LCS1
    --time Timestamp --train-fraction 0.25 --pollutant no2 --unit ppb
    """
    import numpy as np

    from luftnett.calibration.evaluate import evaluate_model
    from luftnett.calibration.report import text_report
    from luftnett.calibration.split import train_test_split
    from luftnett.calibration.targets import default_limit

    saved = _read_model(model_file) if model_file is not None else None
    if saved is None:
        _warn_ignored(model_name, covariates, rh_col, temp_col, abs_humidity)
    else:
        covariates, rh_col, temp_col, model_name = ",".join(saved.inputs), None, None, "multilinear"
    data = _load(csv_path, reference, sensor, covariates, rh_col, temp_col, model_name,
                 time_col, time_format, delimiter, decimal, na_tokens)  # fmt: skip
    n = len(data.table)
    notes: list[str] = []
    if saved is not None:
        train = np.zeros(n, dtype=np.bool_)
        split_desc = f"none: saved model {saved.model_id}"
    elif split_at is not None:
        if data.table.times is None:
            raise ConfigError("--split-at needs --time COLUMN")
        cut = _split_time(split_at, time_format)
        train = np.array([t < cut for t in data.table.times], dtype=np.bool_)
        if train.all() or not train.any():
            raise CalibrationError(f"--split-at {split_at} leaves an empty train or test part")
        split_desc = f"before {split_at}"
    else:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            train = train_test_split(n, train_fraction, split, seed)  # type: ignore[arg-type]
        notes += [str(w.message) for w in caught]
        split_desc = f"{'first' if split == 'chronological' else 'random'} {train_fraction:.0%}"
    _require_parts(data, train, split_desc)
    if limit is None and pollutant is not None:
        limit = default_limit(pollutant, "ppb" if unit.lower() == "ppb" else "ugm3")  # type: ignore[arg-type]
    model = saved or _fit(data, train, model_name, rh_col, temp_col, abs_humidity, unit)
    cols = data.table.columns
    test = ~train
    ev = evaluate_model(
        model,
        cols[reference][test],
        cols[sensor][test],
        data.cov(test),
        limit=limit,
        u_ref=u_ref,
        pollutant=pollutant,  # type: ignore[arg-type]
    )
    for note in notes:
        click.echo(f"warning: {note}", err=True)
    if as_json:
        doc = ev.as_dict()
        doc.update(
            rows_read=data.table.rows_read,
            rows_dropped=data.table.rows_dropped,
            n_train=int(train.sum()),
            split=split_desc,
        )
        click.echo(json.dumps(doc, indent=2, ensure_ascii=False))
        return
    click.echo(
        text_report(data.table, data.source, data.sensor, data.reference, ev,
                    int(train.sum()), split_desc, unit)
    )  # fmt: skip


def _split_time(text: str, time_format: str | None) -> datetime:
    """--split-at in --time-format when given (as the time column), else ISO 8601."""
    from luftnett.calibration.table import parse_time

    if time_format:
        with contextlib.suppress(CalibrationError):
            return parse_time(text, time_format)
    try:
        return parse_time(text)
    except CalibrationError:
        fmt = f"in --time-format {time_format!r} or " if time_format else ""
        raise ConfigError(
            f"--split-at: cannot read {text!r}; give it {fmt}as ISO 8601, e.g. 2024-01-05T00:00"
        ) from None


def _require_parts(data: _Data, train: npt.NDArray[np.bool_], split_desc: str) -> None:
    """Both parts of the split need MIN_PAIRS complete pairs; say which part falls short."""
    from luftnett.calibration.regression import MIN_PAIRS

    n = len(data.table)
    n_train = int(train.sum())
    for part, k in (("training", n_train), ("test", n - n_train)):
        if 0 < k < MIN_PAIRS or (part == "test" and k == 0):
            raise CalibrationError(
                f"the {part} part has only {k} complete pair{'s' * (k != 1)} (train: "
                f"{split_desc}); {data.source} has {n} complete rows of {data.table.rows_read}; "
                f"need at least {MIN_PAIRS} in each part: use more data or change "
                "--train-fraction/--split-at"
            )


def _read_model(path: Path) -> CalibrationModel:
    from luftnett.calibration.model import CalibrationModel

    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read model file {path}: {exc.strerror}") from exc
    return CalibrationModel.from_json(text)


def _fit_options(f: F) -> F:
    return _data_options(f, database=True)


@calibrate.command()
@_fit_options
@click.option("--reference-station", help="Identifier of the reference station, stored.")
@click.option(
    "--out",
    type=click.Path(dir_okay=False, writable=True, path_type=Path),
    help="Write the model JSON here (default: standard output).",
)
@click.option("--device", "device_id", help="Fit from the database: this device's readings.")
@click.option("--from", "start", help="With --device: first hour of the co-location (ISO, UTC).")
@click.option("--to", "end", help="With --device: end of the co-location (exclusive).")
@click.option(
    "--pollutant",
    type=click.Choice(["pm25", "pm10", "no2"]),
    default="pm25",
    show_default=True,
    help="With --device: which pollutant to calibrate.",
)
@click.option(
    "--train-fraction",
    type=click.FloatRange(0, 1, min_open=True, max_open=True),
    default=0.7,
    show_default=True,
    help="With --device: share of the hours (in time order) used for fitting.",
)
@click.option("--by", "created_by", help="With --device: who fits (default: the OS user).")
def fit(
    csv_path: str | None,
    reference: str,
    sensor: str | None,
    covariates: str,
    rh_col: str | None,
    temp_col: str | None,
    abs_humidity: bool,
    model_name: str,
    time_col: str | None,
    time_format: str | None,
    delimiter: str,
    decimal: str,
    na_tokens: tuple[str, ...],
    unit: str,
    reference_station: str | None,
    out: Path | None,
    device_id: str | None,
    start: str | None,
    end: str | None,
    pollutant: str,
    train_fraction: float,
    created_by: str | None,
) -> None:
    """Fit a model on a paired CSV and write it as JSON, or on a co-location in the database.

    From a CSV: every complete row is used; the JSON carries the family, coefficients and
    covariance, inputs, units, training window, reference station, fit metrics and a model_id
    that hashes all of them.

    With --device D --reference STATION --from --to: hourly means of the device's valid
    readings (RH and temperature as covariates) are paired with the station's hourly values,
    the first --train-fraction of the hours fit the model, the rest evaluate it, and the result
    is stored as a new calibration version (never overwriting one).

    Example:  luftnett calibrate fit --csv pa.csv --reference conc --sensor A_B_Avg
    --covariates humidity_a,temp_Celsius --model multilinear --out pa-mlr.json

    Example:  luftnett calibrate fit --device demo-001 --reference NO0083A --from 2024-01-01
    --to 2024-03-01 --model mlr
    """
    if device_id is not None:
        if csv_path is not None:
            raise ConfigError("give either --csv or --device, not both")
        given = [
            o
            for o, v in (
                ("--covariates", covariates.strip()),
                ("--rh", rh_col),
                ("--temp", temp_col),
                ("--abs-humidity", abs_humidity),
            )
            if v
        ]
        if given:
            click.echo(
                f"warning: {', '.join(given)} ignored with --device: models with covariates "
                "take the device's own RH and temperature (rh_pct, temperature_c)",
                err=True,
            )
        from luftnett.calibration.db_cli import fit_from_database

        fit_from_database(device_id, reference, start, end, model_name, pollutant,
                          train_fraction, created_by)  # fmt: skip
        return
    if csv_path is None or sensor is None:
        raise ConfigError("give --csv FILE and --sensor COLUMN (or --device D for the database)")
    _warn_ignored(model_name, covariates, rh_col, temp_col, abs_humidity)
    data = _load(csv_path, reference, sensor, covariates, rh_col, temp_col, model_name,
                 time_col, time_format, delimiter, decimal, na_tokens)  # fmt: skip
    model = _fit(data, None, model_name, rh_col, temp_col, abs_humidity, unit, reference_station)
    text = model.to_json()
    if out is None:
        click.echo(text)
        return
    try:
        out.write_text(text + "\n", encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot write {out}: {exc.strerror}") from exc
    click.echo(f"wrote {model.model_id} ({len(data.table)} rows) to {out}", err=True)


def _attach_database_commands() -> None:
    from luftnett.calibration.db_cli import DB_COMMANDS

    for cmd in DB_COMMANDS:
        calibrate.add_command(cmd)


_attach_database_commands()
