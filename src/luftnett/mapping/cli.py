"""``luftnett map``: interpolate CSV points, build and rank maps from the database, the city.

Registered in :data:`luftnett.cli.LAZY_COMMANDS`; numpy and scipy load only inside commands.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

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


_DIR = click.Path(file_okay=False, path_type=Path)


def _features(areas: Path | None, receptors: Path | None) -> tuple[list[Any], list[Any]]:
    from luftnett.mapping.features import example_path, read_areas, read_receptors

    return (
        read_areas(areas or example_path("districts.geojson")),
        read_receptors(receptors or example_path("receptors.geojson")),
    )


def _report(ranking: dict[str, Any], out: Path) -> None:
    cv = ranking["loocv"]
    click.echo(
        f"wrote {out}: {len(ranking['areas'])} areas, {len(ranking['receptors'])} receptors "
        f"ranked; loocv n={cv['n']} rmse={cv['rmse']} bias={cv['bias']}",
        err=True,
    )
    for group in ("areas", "receptors"):
        if ranking["outside_map"][group]:
            names = ", ".join(ranking["outside_map"][group][:5])
            click.echo(f"outside the map, not ranked ({group}): {names}", err=True)


@map_group.command("build")
@click.option(
    "--pollutant", required=True, type=click.Choice(["pm25", "pm10", "no2"]), help="What to map."
)
@click.option(
    "--period",
    required=True,
    type=click.Choice(["hourly", "daily", "annual"]),
    help="Clock hour, calendar day or calendar year (days and years in UTC+01:00).",
)
@click.option(
    "--at", "at", required=True, help="A time in the period: 2026, 2026-03-01, 2026-03-01T08."
)
@click.option(
    "--method",
    default="ok",
    show_default=True,
    type=click.Choice(["idw", "ok", "uk"]),
    help="Interpolation method.",
)
@click.option("--out", "out_dir", required=True, type=_DIR, help="Directory for the map's files.")
@click.option(
    "--statistic",
    default="mean",
    show_default=True,
    type=click.Choice(["mean", "exceedances"]),
    help="Period mean, or (annual) the number of days above the daily reference value.",
)
@click.option(
    "--values",
    default="raw",
    show_default=True,
    type=click.Choice(["raw", "calibrated"]),
    help="Sensor values as reported, or calibrated with their uncertainty.",
)
@click.option(
    "--drift",
    "drift_file",
    type=_FILE,
    help="uk only: covariate grid CSV x,y,drift (metres, map CRS).",
)
@click.option(
    "--cell",
    "cell_m",
    default=100.0,
    show_default=True,
    type=click.FloatRange(min=1),
    help="Cell size, m.",
)
@click.option(
    "--margin",
    "margin_m",
    default=500.0,
    show_default=True,
    type=click.FloatRange(min=0),
    help="Margin around the sites, m.",
)
@click.option(
    "--epsg",
    type=click.Choice(["25832", "25833", "25834", "25835"]),
    help="Metric CRS [zone of the sites].",
)
@click.option(
    "--min-coverage",
    default=0.75,
    show_default=True,
    type=click.FloatRange(0, 1),
    help="Share of the period a site must cover.",
)
@click.option(
    "--areas",
    "areas_file",
    type=_FILE,
    help="Areas GeoJSON to rank [the synthetic town's districts].",
)
@click.option(
    "--receptors",
    "receptors_file",
    type=_FILE,
    help="Receptors GeoJSON to rank [the synthetic town's].",
)
@click.pass_context
def build(
    ctx: click.Context,
    pollutant: str,
    period: str,
    at: str,
    method: str,
    out_dir: Path,
    statistic: str,
    values: str,
    drift_file: Path | None,
    cell_m: float,
    margin_m: float,
    epsg: str | None,
    min_coverage: float,
    areas_file: Path | None,
    receptors_file: Path | None,
) -> None:
    """Build an exposure map from the database and rank areas and receptors on it.

    Reads per-site hourly means (readings -> deployments -> sites), forms the period's value
    per site with its uncertainty, interpolates on a grid in a metric CRS, and writes
    grid.geojson (value and se per cell, WGS84), layer.png with layer.json (WGS84 bounds,
    colour scale, metadata), ranking.json and summary.md ("where to act", Norwegian and
    English). The LOOCV RMSE and bias are in every file.

    Example:  luftnett map build --pollutant no2 --period annual --at 2026 --method uk
    --drift roads.csv --out maps/no2-2026
    """
    import psycopg

    from luftnett.cli import settings_of
    from luftnett.connect import database_url
    from luftnett.mapping.drift import read_drift_grid
    from luftnett.mapping.errors import MappingError
    from luftnett.mapping.exposure import MapSpec, build_map, exceedance_threshold
    from luftnett.mapping.outputs import write_map
    from luftnett.mapping.period import parse_period
    from luftnett.mapping.queries import fetch_site_hours
    from luftnett.mapping.sitestats import site_statistics

    if drift_file is not None and method != "uk":
        raise MappingError(f"--drift applies to --method uk only (got --method {method})")
    p = parse_period(period, at)
    if statistic == "exceedances" and p.kind != "annual":
        raise MappingError("--statistic exceedances needs --period annual")
    areas, receptors = _features(areas_file, receptors_file)
    drift = read_drift_grid(drift_file) if drift_file is not None else None
    threshold = exceedance_threshold(pollutant).value if statistic == "exceedances" else None
    try:
        with database_url(settings_of(ctx)) as url, psycopg.connect(url) as conn:
            hours = fetch_site_hours(conn, pollutant, p.start, p.end, values)  # type: ignore[arg-type]
    except psycopg.OperationalError as exc:
        raise MappingError(f"cannot reach the database ({str(exc).splitlines()[0]})") from exc
    stats = site_statistics(
        hours,
        p,
        pollutant,
        statistic=statistic,  # type: ignore[arg-type]
        threshold=threshold,
        min_coverage=min_coverage,
    )
    spec = MapSpec(
        pollutant=pollutant,
        period=p,
        method=method,  # type: ignore[arg-type]
        statistic=statistic,  # type: ignore[arg-type]
        cell_m=cell_m,
        margin_m=margin_m,
        drift_grid=drift,
        epsg=int(epsg) if epsg else None,
        values=values,
    )
    m = build_map(stats, spec)
    click.echo(m.interp.summary, err=True)
    _report(write_map(m, out_dir, areas, receptors), out_dir)


@map_group.command("rank")
@click.option(
    "--map", "map_dir", required=True, type=_DIR, help="A directory written by `map build`."
)
@click.option(
    "--areas",
    "areas_file",
    type=_FILE,
    help="Areas GeoJSON (polygons) [the synthetic town's districts].",
)
@click.option(
    "--receptors",
    "receptors_file",
    type=_FILE,
    help="Receptors GeoJSON (points) [the synthetic town's].",
)
@click.option(
    "--out", "out_dir", type=_DIR, help="Where to write ranking.json and summary.md [--map]."
)
def rank(
    map_dir: Path, areas_file: Path | None, receptors_file: Path | None, out_dir: Path | None
) -> None:
    """Rank areas and receptors on a map built earlier; print the summary.

    Areas get the mean of the cells whose centres lie inside, with the mean of their se
    (an upper bound: the kriging system is not saved); receptors their cell's value and se.
    Writes ranking.json and summary.md; the summary also goes to stdout.

    Example:  luftnett map rank --map maps/no2-2026 --areas catchments.geojson
    --receptors schools.geojson --out maps/no2-2026/schools
    """
    from luftnett.mapping.outputs import rank_saved_map
    from luftnett.mapping.summary import summary_markdown

    areas, receptors = _features(areas_file, receptors_file)
    ranking = rank_saved_map(map_dir, areas, receptors, out_dir)
    meta = {**ranking, "sites_used": ranking["loocv"]["n"], "threshold": None}
    click.echo(summary_markdown(ranking, meta))
    _report(ranking, out_dir or map_dir)


@map_group.command("city")
@click.option("--out", "out_dir", required=True, type=_DIR, help="Directory for the CSV files.")
@click.option(
    "--pollutant",
    default="no2",
    show_default=True,
    type=click.Choice(["pm25", "pm10", "no2"]),
    help="For points.csv.",
)
@click.option(
    "--period",
    default="daily",
    show_default=True,
    type=click.Choice(["hourly", "daily", "annual"]),
    help="Period of the means.",
)
@click.option("--at", "at", default="2024-01-15", show_default=True, help="A time in the period.")
@click.option(
    "--sensors",
    "n_sensors",
    default=40,
    show_default=True,
    type=click.IntRange(3, 500),
    help="Sensor boxes.",
)
@click.option("--seed", default=8, show_default=True, type=int, help="City seed.")
@click.option(
    "--cell",
    "cell_m",
    default=100.0,
    show_default=True,
    type=click.FloatRange(min=10),
    help="Cell size, m.",
)
def city(
    out_dir: Path, pollutant: str, period: str, at: str, n_sensors: int, seed: int, cell_m: float
) -> None:
    """Write the synthetic city's truth, sensors and simulated readings as CSV files.

    truth.csv (true period means per cell), sensors.csv, readings.csv (hourly raw readings),
    points.csv (calibrated period means x,y,value,sigma,drift), predict.csv (cell centres
    with drift) and drift.csv (traffic covariate grid), all in EPSG:25832 metres, so that
    `luftnett map interpolate` can be checked against truth.csv.

    Example:  luftnett map city --out city && luftnett map interpolate --points
    city/points.csv --method uk --predict-at city/predict.csv > city/map.csv
    """
    from luftnett.firmware_sim.city import SyntheticCity
    from luftnett.mapping.period import parse_period
    from luftnett.mapping.synthetic import write_city

    files = write_city(
        SyntheticCity(seed),
        out_dir,
        parse_period(period, at),
        pollutant,
        n_sensors=n_sensors,
        cell_m=cell_m,
    )
    click.echo("wrote " + ", ".join(str(p) for p in files.values()), err=True)
