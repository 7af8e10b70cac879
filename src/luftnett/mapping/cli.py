"""``luftnett map``: interpolation from the command line, without the database.

Registered in :data:`luftnett.cli.LAZY_COMMANDS`; numpy and scipy load only inside commands.
"""

from __future__ import annotations

import math
from pathlib import Path

import click

__all__ = ["map_group"]

_FILE = click.Path(dir_okay=False, path_type=Path)


def _num(v: float, digits: int = 10) -> str:
    """A number for CSV: empty when missing (IDW's se), otherwise ``digits`` significant."""
    return "" if not math.isfinite(v) else f"{v:.{digits}g}"


@click.group("map")
def map_group() -> None:
    """Exposure maps: interpolate sensor values in metric coordinates (IDW, kriging)."""


@map_group.command("interpolate")
@click.option(
    "--points",
    "points_file",
    required=True,
    type=_FILE,
    help="Observations: CSV with x, y (metres), value and optional sigma, drift.",
)
@click.option(
    "--method",
    required=True,
    type=click.Choice(["idw", "ok", "uk"]),
    help="idw: inverse distance; ok: ordinary kriging; uk: universal kriging / external drift.",
)
@click.option(
    "--predict-at",
    "predict_file",
    required=True,
    type=_FILE,
    help="Where to predict: CSV with x, y (metres) and, for a drift column, drift.",
)
@click.option(
    "--drift",
    "drift_file",
    type=_FILE,
    help="uk only: covariate grid, CSV x, y, drift (bilinear). Default: drift column, or x, y.",
)
@click.option(
    "--model",
    type=click.Choice(["exponential", "spherical", "gaussian", "auto"]),
    default="exponential",
    show_default=True,
    help="Kriging: variogram model (auto: the best weighted fit of the three).",
)
@click.option("--nugget", type=click.FloatRange(min=0), help="Kriging: fix the nugget (value²).")
@click.option("--power", type=click.FloatRange(min=0, min_open=True), help="IDW: power [2].")
@click.option("--neighbours", "k", type=click.IntRange(min=1), help="IDW: use the k nearest.")
@click.option(
    "--radius", "radius_m", type=click.FloatRange(min=0, min_open=True), help="IDW: metres."
)
def interpolate(
    points_file: Path,
    method: str,
    predict_file: Path,
    drift_file: Path | None,
    model: str,
    nugget: float | None,
    power: float | None,
    k: int | None,
    radius_m: float | None,
) -> None:
    """Interpolate point values at other locations; CSV x,y,value,se to stdout.

    Coordinates are metres in one metric CRS (e.g. ETRS89 / UTM 33N, EPSG:25833). Kriging
    fits its variogram from the data and treats each point's optional sigma (measurement
    standard deviation, value units) as known error: the map then smooths instead of passing
    through noisy points. se is the kriging standard error of the true value; it is empty
    for IDW, which has no error model (judge IDW by its LOOCV RMSE). The LOOCV line, the
    fitted model and the drift used go to stderr.

    Example:  luftnett map interpolate --points sensors.csv --method uk --drift roads.csv
    --predict-at receptors.csv > exposure.csv
    """
    from luftnett.mapping.drift import read_drift_grid
    from luftnett.mapping.errors import MappingError
    from luftnett.mapping.interpolate import fit_interpolator
    from luftnett.mapping.points import read_points

    if method != "idw" and (power is not None or k is not None or radius_m is not None):
        raise MappingError("--power, --neighbours and --radius apply to --method idw only")
    if method == "idw" and nugget is not None:
        raise MappingError("--nugget applies to kriging (--method ok or uk) only")
    if drift_file is not None and method != "uk":
        raise MappingError(f"--drift applies to --method uk only (got --method {method})")
    points = read_points(points_file, with_value=True)
    at = read_points(predict_file, with_value=False)
    if at.n == 0:
        raise MappingError(f"{predict_file}: no locations to predict at")
    grid = read_drift_grid(drift_file) if drift_file is not None else None
    fitted = fit_interpolator(
        points,
        method,  # type: ignore[arg-type]
        drift_grid=grid,
        model=model,  # type: ignore[arg-type]
        nugget=nugget,
        power=2.0 if power is None else power,
        k=k,
        radius_m=radius_m,
    )
    if fitted.drift_source == "column" and at.drift is None:
        raise MappingError(
            f"{points_file} has a drift column, so {predict_file} needs one too (missing: drift)"
        )
    pred = fitted.predict(at.xy_m, at.drift)
    lines = ["x,y,value,se"]
    lines += [
        f"{_num(x, 12)},{_num(y, 12)},{_num(v)},{_num(s)}"
        for (x, y), v, s in zip(
            at.xy_m.tolist(), pred.value.tolist(), pred.se.tolist(), strict=True
        )
    ]
    click.echo("\n".join(lines))
    click.echo(fitted.summary, err=True)
    click.echo(fitted.cv.line(), err=True)
