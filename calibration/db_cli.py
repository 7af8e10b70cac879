"""Database-side calibration commands: ``luftnett reference ...`` and the ``luftnett calibrate``
subcommands that need the database (attached to that group by ``calibration/cli.py``).

numpy, psycopg and matplotlib are imported inside the commands, so ``--help`` stays instant.
"""

from __future__ import annotations

import contextlib
import getpass
import json
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from luftnett.errors import ConfigError
from luftnett.timefmt import utc_local, utc_local_fields

if TYPE_CHECKING:
    import psycopg

__all__ = ["DB_COMMANDS", "fit_from_database", "parse_when", "reference"]

POLLUTANTS = ("pm25", "pm10", "no2")


def parse_when(text: str, option: str) -> datetime:
    """An ISO date or date-time; a naive one is UTC."""
    try:
        t = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError as exc:
        raise ConfigError(f"{option}: cannot read {text!r} as an ISO date or date-time") from exc
    return t.replace(tzinfo=UTC) if t.tzinfo is None else t.astimezone(UTC)


@contextlib.contextmanager
def _connect(autocommit: bool = True) -> Iterator[psycopg.Connection[Any]]:
    import psycopg

    from luftnett.cli import settings_of
    from luftnett.connect import database_url

    ctx = click.get_current_context()
    with database_url(settings_of(ctx)) as url:
        try:
            conn = psycopg.connect(url, autocommit=autocommit)
        except psycopg.OperationalError as exc:
            from luftnett.errors import StorageError

            raise StorageError(f"cannot connect to the database: {exc}".splitlines()[0]) from exc
        with conn:
            try:
                conn.execute("SELECT 1 FROM calibration_versions LIMIT 0")
            except psycopg.errors.UndefinedTable:
                from luftnett.errors import StorageError

                raise StorageError(
                    "the database has no calibration tables; run `luftnett db migrate`"
                ) from None
            yield conn


def _by_option(f: Any) -> Any:
    return click.option(
        "--by", "created_by", default=None, help="Who does this (default: the OS user)."
    )(f)


def _who(created_by: str | None) -> str:
    if created_by:
        return created_by
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # pragma: no cover - no passwd entry in a container
        return "unknown"


# -- reference ------------------------------------------------------------------------------
@click.group()
def reference() -> None:
    """Reference-station data: import a CSV or fetch from the NILU API.

    Example:  luftnett reference fetch --station Kirkeveien --from 2024-01-01 --to 2024-02-01
    """


@reference.command("import")
@click.option("--csv", "csv_path", required=True, help="CSV: time,pollutant,value,unit[,status].")
@click.option("--station", required=True, help="Station id (e.g. the EoI code NO0057A).")
@click.option("--name", help="Station name; creates or updates the station.")
@click.option(
    "--lat", type=click.FloatRange(-90, 90), help="Station latitude, degrees (with --lon)."
)
@click.option(
    "--lon", type=click.FloatRange(-180, 180), help="Station longitude, degrees (with --lat)."
)
@click.option("--provider", default="csv", show_default=True, help="Who measured it.")
@click.option("--attribution", help="Credit line to keep with the data.")
@click.option("--delimiter", default=",", show_default=True, help="Field separator; 'tab'.")
@click.option("--decimal", default=".", show_default=True, help="Decimal mark, e.g. ','.")
def reference_import(
    csv_path: str,
    station: str,
    name: str | None,
    lat: float | None,
    lon: float | None,
    provider: str,
    attribution: str | None,
    delimiter: str,
    decimal: str,
) -> None:
    """Import hourly reference values from a CSV (see docs/calibration.md for the columns).

    Columns: time (start of the hour, ISO 8601 with offset), pollutant (pm25, pm10, no2,
    o3), value, unit (µg/m³ or ppb), status (provisional or validated; empty = provisional).
    Validated values replace provisional ones, never the other way round; calibrations fitted
    on replaced hours are marked for refit. Nothing is imported from a file with a malformed
    line, a value outside the plausible range of its pollutant (the QC ranges) or one hour
    given twice with different values; empty and NaN values and repeated hours are skipped
    and reported on stderr.

    Example:  luftnett reference import --csv kirkeveien.csv --station NO0083A --name Kirkeveien
    --lat 59.9323 --lon 10.7245
    """
    from luftnett.calibration.reference import ParseStats, ReferenceStation, read_reference_csv
    from luftnett.calibration.store import import_observations, upsert_station
    from luftnett.calibration.table import open_csv

    if (lat is None) != (lon is None):
        raise click.UsageError("give --lat and --lon together (the station's position)")
    if lat is not None and name is None:
        raise click.UsageError(
            "--lat and --lon are stored with the station: give --name too (it creates or "
            "updates the station)"
        )
    delim = "\t" if delimiter.lower() in ("tab", "\\t") else delimiter
    if len(delim) != 1 or len(decimal) != 1 or delim == decimal:
        raise click.UsageError(
            f"--delimiter and --decimal must be two different single characters "
            f"(got {delimiter!r} and {decimal!r})"
        )
    path = Path(csv_path)
    stats = ParseStats()
    with open_csv(csv_path) as fh:
        obs = read_reference_csv(
            fh, path.name, delimiter=delim, decimal=decimal, stats=stats, station=station
        )
    for line in stats.describe():
        click.echo(line, err=True)
    with _connect() as conn:
        if name is not None:
            pols = tuple(sorted({o.pollutant for o in obs}))
            upsert_station(
                conn, ReferenceStation(station, name, provider, lat, lon, pols, attribution)
            )
        res = import_observations(conn, station, obs, f"csv:{path.name}")
    _print_import(station, res)


def _print_import(station: str, res: Any) -> None:
    dupes = f" ({res.duplicates} repeated hours kept once)" if res.duplicates else ""
    click.echo(
        f"{station}: {res.received} values read{dupes}, {res.inserted} new, {res.updated} updated, "
        f"{res.unchanged} unchanged; {res.newly_validated} provisional hours now validated"
    )
    for v in res.versions_marked:
        click.echo(f"calibration version {v} marked refit-needed (its reference data changed)")


def _http_url(value: str) -> str:
    from urllib.parse import urlsplit

    parts = urlsplit(value.strip())
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        raise click.BadParameter(
            f"{value!r} is not an http:// or https:// URL with a host; give e.g. "
            "https://api.nilu.no"
        )
    return value.strip()


@reference.command("fetch")
@click.option("--station", required=True, help="NILU station name or EoI code.")
@click.option("--from", "start", required=True, help="First hour, ISO date/time (UTC if naive).")
@click.option("--to", "end", required=True, help="End (exclusive), ISO date/time.")
@click.option(
    "--components",
    default="pm25,pm10,no2",
    show_default=True,
    help="Comma-separated pollutants to fetch.",
)
@click.option(
    "--base-url",
    default="https://api.nilu.no",
    show_default=True,
    callback=lambda _ctx, _param, value: _http_url(value),
    help="The NILU API (or a recording of it): an http:// or https:// URL.",
)
def reference_fetch(station: str, start: str, end: str, components: str, base_url: str) -> None:
    """Fetch hourly values of a NILU station (api.nilu.no) and store them with their status.

    Uses /lookup/stations to find the station (name or EoI code) and its position, then
    /obs/historical/{from}/{to}/{station} in 30-day pieces. NILU's qualityControlled values
    are stored as validated, the rest as provisional. The data must be credited to NILU:
    the attribution is stored with the station and printed here.

    Example:  luftnett reference fetch --station Kirkeveien --from 2024-01-01 --to 2024-03-01
    """
    from luftnett.calibration.reference import NILU_ATTRIBUTION, NiluClient, ReferenceDataError
    from luftnett.calibration.store import import_observations, upsert_station

    t0, t1 = parse_when(start, "--from"), parse_when(end, "--to")
    if t1 <= t0:
        raise ConfigError("--to must be after --from")
    names = {"pm25": "PM2.5", "pm10": "PM10", "no2": "NO2", "o3": "O3"}
    comps = [c.strip().lower() for c in components.split(",") if c.strip()]
    bad = [c for c in comps if c not in names]
    if bad:
        raise ConfigError(f"--components: unknown {', '.join(bad)}; use {', '.join(names)}")
    client = NiluClient(base_url)
    st = client.find_station(station)
    obs = []
    piece = t0
    while piece < t1:
        stop = min(piece + timedelta(days=30), t1)
        _, got, stats = client.historical(st.name, piece, stop, [names[c] for c in comps])
        obs += [o for o in got if t0 <= o.hour_start < t1]
        for why, n in stats.skipped.items():
            click.echo(f"skipped {n} values: {why}", err=True)
        piece = stop
    if not obs:
        raise ReferenceDataError(f"NILU returned no hourly values for {st.name} in that period")
    with _connect() as conn:
        upsert_station(conn, st)
        res = import_observations(conn, st.station_id, obs, "nilu")
    click.echo(f"{st.name} ({st.station_id}, {st.lat:.5f} {st.lon:.5f})")
    _print_import(st.station_id, res)
    click.echo(NILU_ATTRIBUTION)


# -- calibrate (database) -------------------------------------------------------------------
@click.command("colocations")
@click.option(
    "--max-distance",
    type=click.FloatRange(min=0, min_open=True),
    default=50.0,
    show_default=True,
    help="Metres between a device's site and a reference station.",
)
@click.option("--device", "device_id", help="Only this device.")
@click.option("--station", "station_id", help="Only this reference station.")
def colocations(max_distance: float, device_id: str | None, station_id: str | None) -> None:
    """List co-location campaigns: deployments within --max-distance of a reference station.

    Example:  luftnett calibrate colocations --max-distance 50
    """
    from luftnett.calibration.colocation import find_colocations

    with _connect() as conn:
        found = find_colocations(conn, max_distance, device_id, station_id)
    if not found:
        click.echo(f"no device deployed within {max_distance:g} m of a reference station")
        return
    click.echo(f"{'device':<20} {'site':<16} {'station':<12} {'m':>6}  period")
    for c in found:
        to = utc_local(c.valid_to) if c.valid_to else "now"
        click.echo(
            f"{c.device_id:<20} {c.site_id:<16} {c.station_id:<12} {c.distance_m:>6.1f}  "
            f"{utc_local(c.valid_from)} … {to}  ({', '.join(c.pollutants) or 'no data yet'})"
        )


def fit_from_database(
    device_id: str,
    station_id: str,
    start: str | None,
    end: str | None,
    model_name: str,
    pollutant: str,
    train_fraction: float,
    created_by: str | None,
) -> None:
    """``calibrate fit --device``: pair, fit, evaluate on the hold-out, store a version."""
    from luftnett.calibration.campaign import fit_campaign, unit_of

    if start is None or end is None:
        raise ConfigError("--device needs --from and --to (the co-location period)")
    t0, t1 = parse_when(start, "--from"), parse_when(end, "--to")
    if t1 <= t0:
        raise ConfigError("--to must be after --from")
    with _connect() as conn:
        res = fit_campaign(conn, device_id, station_id, pollutant, t0, t1, model_name,
                           _who(created_by), train_fraction)  # fmt: skip
    ev, m = res.evaluation, res.model
    unit = unit_of(pollutant)
    click.echo(
        f"stored calibration version {res.version_id} for {device_id} {pollutant} "
        f"({m.model_id}, {len(res.pairs)} hours paired, {int(res.train.sum())} for fitting)"
    )
    click.echo(
        f"hold-out: RMSE {ev.raw.rmse:.3g} -> {ev.calibrated.rmse:.3g} {unit}, "
        f"R² {ev.calibrated.r2:.3f}, MBE {ev.calibrated.mbe:+.3g}"
        + (f", REU {ev.reu.reu_pct:.0f} % at {ev.reu.limit:.3g}" if ev.reu else "")
        + (f", CEN/TS 17660 class {ev.cen_class}" if ev.cen_class else "")
    )
    click.echo(f"make it current with: luftnett calibrate activate {res.version_id} --from DATE")


@click.command("activate")
@click.argument("version_id", type=int)
@click.option("--from", "start", required=True, help="In force from (ISO date/time, UTC).")
@click.option("--wait", is_flag=True,
              help="Wait for the reprocessing, with a progress bar on a terminal.")  # fmt: skip
@click.option(
    "--no-reprocess",
    is_flag=True,
    help="Only activate; queue no reprocessing job (new readings still get it).",
)
@click.option("--no-worker", is_flag=True,
              help="Queue the job but start no worker (a `calibrate jobs run --forever` "
              "service works it).")  # fmt: skip
@_by_option
@click.pass_context
def activate(ctx: click.Context, version_id: int, start: str, wait: bool, no_reprocess: bool,
             no_worker: bool, created_by: str | None) -> None:  # fmt: skip
    """Make a calibration version current for its device (or sensor model) from a date on,
    and recompute the history it now covers in the background.

    Readings from that date get this version at ingest. The readings already stored from
    that date (up to the next activation) are reprocessed by a job: it is queued here and a
    background worker (`luftnett calibrate jobs run`) is started; `luftnett calibrate jobs`
    shows its progress. Values of older versions stay ("as calibrated by version N").

    On the demo's own database while `luftnett demo` is not running, the database runs only
    as long as this command: the job is then worked here, in the foreground, before the
    command exits (or, with --no-worker, left queued for `luftnett demo` or `luftnett
    calibrate jobs run`).

    Example:  luftnett calibrate activate 12 --from 2024-03-01 --wait
    """
    from luftnett.calibration.jobs import enqueue
    from luftnett.calibration.jobs_cli import start_background_worker, wait_with_progress
    from luftnett.calibration.store import activate as do_activate
    from luftnett.calibration.store import get_version
    from luftnett.cli import settings_of
    from luftnett.connect import database_is_transient, database_url

    when = parse_when(start, "--from")
    who_by = _who(created_by)
    settings = settings_of(ctx)
    transient = database_is_transient(settings)
    with database_url(settings) as url, _connect() as conn:
        with conn.transaction():
            aid = do_activate(conn, version_id, when, who_by)
            job = None if no_reprocess else enqueue(conn, version_id, who_by, aid)
        v = get_version(conn, version_id)
        who = v.device_id or f"sensor model {v.sensor_model}"
        click.echo(f"version {version_id} current for {who} {v.pollutant} from "
                   f"{when.isoformat()} (activation {aid})")  # fmt: skip
        if v.status != "ok":
            click.echo(f"warning: version {version_id} is {v.status}: {v.status_reason}", err=True)
        if job is None:
            return
        if transient and no_worker:
            click.echo(f"reprocessing job {job} queued (no worker started): the demo's database "
                       f"in {settings.home} stops when this command exits; `luftnett demo` or "
                       "`luftnett calibrate jobs run` works the job")  # fmt: skip
            return
        if transient:
            _work_in_foreground(conn, url, job, settings.home)
            return
        if not no_worker:
            pid = start_background_worker(ctx)
            click.echo(f"reprocessing job {job} queued; background worker pid {pid}; "
                       "follow it with `luftnett calibrate jobs`")  # fmt: skip
        else:
            click.echo(f"reprocessing job {job} queued (no worker started)")
        if wait:
            wait_with_progress(conn, job)


def _work_in_foreground(conn: psycopg.Connection[Any], url: str, job: int, home: Path) -> None:
    """Work the queue here until no job is open (the database stops when the command exits),
    with a line of progress per part on stderr. Ctrl-C leaves the remaining parts pending
    for the next worker."""
    from luftnett.calibration.jobs import PartResult, job_status, run_workers
    from luftnett.calibration.jobs_cli import status_line
    from luftnett.errors import CalibrationError

    click.echo(f"reprocessing job {job}: the demo's database in {home} runs only while this "
               "command does, so the job is worked here, in the foreground (Ctrl-C leaves the "
               "rest for `luftnett calibrate jobs run`)")  # fmt: skip

    def show(part: PartResult) -> None:
        click.echo(status_line(job_status(conn, part.job_id)), err=True)

    run_workers(url, 1, poll_s=0.2, on_part=show)
    st = job_status(conn, job)
    click.echo(status_line(st))
    if st.state != "done":
        raise CalibrationError(
            f"reprocessing job {job} is {st.state}: {st.error or 'the worker stopped'}; "
            "`luftnett calibrate jobs run` takes it up again"
        )


@click.command("versions")
@click.option("--device", "device_id", help="Only this device's versions.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line.")
def versions(device_id: str | None, as_json: bool) -> None:
    """List calibration versions (never overwritten), with status and hold-out metrics.

    Example:  luftnett calibrate versions --device demo-001
    """
    from luftnett.calibration.store import list_versions

    with _connect() as conn:
        rows = list_versions(conn, device_id)
    if rows and not as_json:
        click.echo(
            f"{'id':>5} {'device (model)':<20} {'pol.':<5} {'kind':<13} {'model id':<26} "
            f"{'hold-out':<11} status"
        )
    for v in rows:
        if as_json:
            click.echo(json.dumps({
                "version_id": v.version_id, "device_id": v.device_id,
                "sensor_model": v.sensor_model, "pollutant": v.pollutant, "kind": v.kind,
                "model_id": v.model.model_id, "reference_station": v.reference_station_id,
                **utc_local_fields("trained_from", v.trained_from),
                **utc_local_fields("trained_to", v.trained_to),
                "rmse": v.metrics.get("rmse"), "reu_pct": v.metrics.get("reu_pct"),
                **utc_local_fields("created_at", v.created_at), "created_by": v.created_by,
                "status": v.status, "status_reason": v.status_reason,
            }, ensure_ascii=False))  # fmt: skip
            continue
        rmse = v.metrics.get("rmse")
        click.echo(
            f"{v.version_id:>5} {v.device_id or '(' + str(v.sensor_model) + ')':<20} "
            f"{v.pollutant:<5} {v.kind:<13} {v.model.model_id:<26} "
            f"{f'RMSE {rmse:.3g}' if isinstance(rmse, float) else '':<11} {v.status}"
        )
    if not rows:
        click.echo("no calibration versions" + (f" for {device_id}" if device_id else ""))


@click.command("report")
@click.argument("version_id", type=int)
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="Directory for index.html and the PNG plots.")  # fmt: skip
def report(version_id: int, out_dir: Path) -> None:
    """Write an HTML report of a version: metrics, scatter, time series, Bland–Altman, REU.

    Example:  luftnett calibrate report 12 --out report-12
    """
    from luftnett.calibration.campaign import evaluate_version
    from luftnett.calibration.html_report import write_report
    from luftnett.calibration.store import get_version

    with _connect() as conn:
        v = get_version(conn, version_id)
        ev, pairs, train = evaluate_version(conn, v)
        row = conn.execute(
            "SELECT attribution FROM reference_stations WHERE station_id = %s",
            (v.reference_station_id,),
        ).fetchone()
    path = write_report(out_dir, v, ev, pairs, train, row[0] if row else None,
                        datetime.now(UTC))  # fmt: skip
    click.echo(f"wrote {path}")


def _reprocess(
    device_id: str, pollutants: tuple[str, ...], version_id: int | None, chunk: int
) -> None:
    from luftnett.calibration.apply_db import reprocess as do_reprocess

    with _connect() as conn:
        row = conn.execute(
            "SELECT count(*) FROM readings WHERE device_id = %s", (device_id,)
        ).fetchone()
        total = int(row[0]) if row else 0
        if total == 0:
            raise ConfigError(f"device {device_id!r} has no readings")
        n_pol = 1 if version_id is not None else len(pollutants)
        if sys.stderr.isatty():
            with click.progressbar(length=total * n_pol, label="reprocessing",
                                   file=sys.stderr) as bar:  # fmt: skip
                res = do_reprocess(conn, device_id, pollutants, version_id, chunk, bar.update)
        else:
            res = do_reprocess(conn, device_id, pollutants, version_id, chunk)
    click.echo(
        f"{device_id}: {res.values} calibrated values written from {res.readings} readings "
        f"(versions {', '.join(map(str, res.versions)) or 'none in force'}); other versions' "
        "values kept"
    )


@click.command("reprocess")
@click.option("--device", "device_id", required=True, help="The device whose history to redo.")
@click.option("--version", "version_id", type=int, help="Apply this version to every reading.")
@click.option("--pollutant", type=click.Choice(POLLUTANTS), multiple=True,
              help="Only these pollutants (repeatable; default all).")  # fmt: skip
@click.option("--chunk", type=click.IntRange(min=1000), default=200_000, show_default=True,
              help="Readings per transaction.")  # fmt: skip
def reprocess(
    device_id: str, version_id: int | None, pollutant: tuple[str, ...], chunk: int
) -> None:
    """Recompute calibrated values of a device's stored readings, in chunks, with progress.

    Without --version each reading gets the version in force at its time; with it, every
    reading gets that version ("as calibrated by version N"). Other versions' values stay.

    Example:  luftnett calibrate reprocess --device demo-001
    """
    _reprocess(device_id, pollutant or POLLUTANTS, version_id, chunk)


@click.command("drift")
@click.option("--device", "device_id", help="Only this device (default: every deployed one).")
@click.option("--pollutant", type=click.Choice(POLLUTANTS), default="pm25", show_default=True,
              help="What to compare.")  # fmt: skip
@click.option("--to", "end", help="End of the period (default now).")
@click.option("--days", type=click.IntRange(min=2), default=28, show_default=True,
              help="Length of the period.")  # fmt: skip
@click.option("--window", "window_days", type=click.IntRange(min=1), default=7, show_default=True,
              help="Rolling window, days.")  # fmt: skip
@click.option("--threshold", "threshold_pct", type=click.FloatRange(min=0), default=20.0,
              show_default=True, help="Flag changes larger than this, %.")  # fmt: skip
@click.option("--radius", "radius_m", type=click.FloatRange(min=0), default=2000.0,
              show_default=True, help="Neighbours within this many metres.")  # fmt: skip
def drift(
    device_id: str | None,
    pollutant: str,
    end: str | None,
    days: int,
    window_days: int,
    threshold_pct: float,
    radius_m: float,
) -> None:
    """Flag sensors drifting against the nearest reference station and their neighbours.

    Rolling 7-day ratio of medians (its change since the first window) and the trend of the
    residuals (per 30 days, relative to the typical level); either beyond --threshold flags
    the device (DRIFT) and suggests a new co-location fit. "ok" needs at least one indicator;
    "no data" means no station or neighbour values to compare with, "unknown" too few hours
    for either indicator. A device's calibrated values (as the version in force made them)
    are compared where it has any in the period, else its raw values; each line says which.

    Example:  luftnett calibrate drift --pollutant no2 --days 60
    """
    from luftnett.calibration.drift_db import fleet_drift

    t1 = parse_when(end, "--to") if end else datetime.now(UTC)
    t0 = t1 - timedelta(days=days)
    with _connect() as conn:
        found = fleet_drift(conn, pollutant, t0, t1, device_id, radius_m, window_days,
                            threshold_pct)  # fmt: skip

    def pct(v: float | None) -> str:
        return "—" if v is None else f"{v:+.0f} %"

    for d in found:
        parts = []
        for label, a in (("reference", d.vs_reference), ("neighbours", d.vs_neighbours)):
            if a is not None:
                parts.append(f"{label}: ratio {pct(a.ratio_change_pct)}, trend "
                             f"{pct(a.trend_pct_per_30d)}/30 d ({a.n_pairs} h)")  # fmt: skip
        ref = f"{d.station_id} at {d.station_distance_m:.0f} m" if d.station_id else "no station"
        verdict = d.verdict
        click.echo(f"{d.device_id}: {verdict} [{d.basis} values, {ref}, {d.neighbours} "
                   "neighbours] " + ("; ".join(parts) or "no comparison data"))  # fmt: skip
        if d.flagged:
            reasons = [r for a in (d.vs_reference, d.vs_neighbours) if a for r in a.reasons]
            station = d.station_id or "STATION"
            click.echo(f"  {'; '.join(reasons)}; suggest recalibration: luftnett calibrate fit "
                       f"--device {d.device_id} --reference {station} ...")  # fmt: skip
    if not found:
        click.echo("no deployed devices with coordinates in the period")


def _jobs() -> click.Command:
    from luftnett.calibration.jobs_cli import jobs

    return jobs


DB_COMMANDS = (colocations, activate, versions, report, reprocess, drift, _jobs())
