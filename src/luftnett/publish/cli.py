"""`luftnett publish`: the open-data archive, once or every night."""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING, Any

import click

from luftnett.cli import settings_of
from luftnett.errors import ConfigError, LuftnettError

if TYPE_CHECKING:
    from luftnett.publish.archive import PublishResult
    from luftnett.settings import PublishSettings

__all__ = ["next_run", "publish_cmd", "run_nightly"]

log = logging.getLogger(__name__)

DAY = click.DateTime(["%Y-%m-%d"])


def next_run(now: datetime, at: str) -> datetime:
    """The next time of day ``at`` ("HH:MM", UTC) strictly after ``now``."""
    hh, mm = (int(x) for x in at.split(":"))
    nxt = now.astimezone(UTC).replace(hour=hh, minute=mm, second=0, microsecond=0)
    return nxt if nxt > now else nxt + timedelta(days=1)


def _datasets(value: str | None) -> tuple[Any, ...]:
    from luftnett.publish.schema import DATASETS

    if value is None:
        return DATASETS
    names = tuple(dict.fromkeys(v.strip() for v in value.split(",") if v.strip()))
    bad = [n for n in names if n not in DATASETS]
    if bad or not names:
        raise click.BadParameter(
            f"unknown dataset {bad[0] if bad else value!r}; use a comma-separated list of: "
            + ", ".join(DATASETS),
            param_hint="--datasets",
        )
    return names


@click.command("publish")
@click.option(
    "--to",
    "target",
    default=None,
    metavar="DIR|URL",
    help="Archive location: a directory or a pyarrow filesystem URL (file:///srv/archive, "
    "s3://bucket/prefix, ...). Default: publish.target.",
)
@click.option(
    "--from", "start", type=DAY, default=None, help="First UTC day (default: the first reading's)."
)
@click.option(
    "--to-date", "end", type=DAY, default=None, help="Last UTC day, included (default: yesterday)."
)
@click.option(
    "--datasets",
    default=None,
    help="Comma-separated: hourly (means per pollutant), raw (every reading), annotations "
    "(staff annotations: why readings are annotated_invalid).  [default: all three]",
)
@click.option("--csv", is_flag=True, help="Also write gzipped CSV files (under csv/).")
@click.option(
    "--force",
    is_flag=True,
    help="Re-read every chunk of the range whatever its watermark (unchanged files are kept).",
)
@click.option(
    "--schedule",
    type=click.Choice(["nightly"]),
    default=None,
    help="Keep running: publish yesterday (and re-check publish.lookback_days before it) "
    "every night at publish.nightly_at UTC.",
)
@click.option(
    "--keep-versions",
    type=click.IntRange(min=1),
    default=None,
    metavar="N",
    help="Keep the newest N dataset versions readable and delete older versions' replaced "
    "files from _history/ (default: publish.keep_versions; unset keeps every version).",
)
@click.option("--once", is_flag=True, help="Publish once and exit (the default).")
@click.pass_context
def publish_cmd(
    ctx: click.Context,
    target: str | None,
    start: datetime | None,
    end: datetime | None,
    datasets: str | None,
    csv: bool,
    force: bool,
    schedule: str | None,
    keep_versions: int | None,
    once: bool,
) -> None:
    """Publish the readings as an open-data archive: Hive-partitioned Parquet
    (dataset=hourly/pollutant=pm25/year=2026/month=11/...) with a manifest and DCAT-AP
    catalogue records (catalogue/*.jsonld).

    Idempotent and append-only: a second run adds nothing; a late reading or a new
    calibration rewrites only the chunks it touches, as new files of a new dataset version,
    and the previous version stays readable (manifest.json lists every version's files).
    Days are UTC; see docs/publish.md.

    Example:  luftnett publish --to /srv/luftnett-archive --from 2026-01-01
    """
    from luftnett.connect import database_url

    if schedule and once:
        raise click.UsageError("--schedule and --once exclude each other")
    names = _datasets(datasets)
    settings = settings_of(ctx)
    if keep_versions is not None:
        settings = settings.model_copy(
            update={"publish": settings.publish.model_copy(update={"keep_versions": keep_versions})}
        )
    target = target or settings.publish.target
    if not target:
        raise ConfigError("no archive location: pass --to DIR|URL or set LUFTNETT_PUBLISH__TARGET")
    d0 = start.date() if start else None
    d1 = end.date() if end else None
    with database_url(settings) as url:
        if schedule is None:
            _once(url, target, settings, d0, d1, names, csv, force)
            return
        if d0 or d1:
            raise click.UsageError("--schedule nightly picks its own days; drop --from/--to-date")
        _nightly(url, target, settings, names, csv)


def _once(
    url: str,
    target: str,
    settings: Any,
    d0: date | None,
    d1: date | None,
    names: tuple[Any, ...],
    csv: bool,
    force: bool,
) -> None:
    from luftnett.publish.archive import publish

    bar: Any = None
    if sys.stderr.isatty():
        bar = click.progressbar(length=1, label="publishing chunks", file=sys.stderr)

    def progress(done: int, total: int, rows: int) -> None:
        if bar is not None:
            bar.length = total
            bar.update(1)
        else:
            click.echo(f"  {done}/{total} chunks, {rows:,} source rows", err=True)

    try:
        res = publish(
            url,
            target,
            settings.publish,
            start=d0,
            end=d1,
            datasets=names,
            csv=csv,
            force=force,
            progress=progress,
        )
    finally:
        if bar is not None:
            bar.render_finish()
    click.echo(res.summary())


def _nightly(url: str, target: str, settings: Any, names: tuple[Any, ...], csv: bool) -> None:
    run_nightly(url, target, settings.publish, names, csv)


def run_nightly(
    url: str,
    target: str,
    s: PublishSettings,
    names: tuple[Any, ...] | None = None,
    csv: bool = False,
    clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    sleep: Callable[[float], None] = time.sleep,
    ticks: int | None = None,
) -> list[PublishResult]:
    """The nightly loop: sleep until ``s.nightly_at`` UTC, publish yesterday and the
    ``s.lookback_days`` before it, repeat; ``ticks`` runs (None: forever). ``clock`` and
    ``sleep`` are the wall clock and time.sleep unless a caller (a test) brings its own.
    ``names``: the datasets (None: all). A failed run is logged and the loop goes on; the
    results of the runs are returned."""
    from luftnett.publish.archive import PublishResult, publish
    from luftnett.publish.schema import DATASETS

    names = names or DATASETS

    results: list[PublishResult] = []
    while ticks is None or len(results) < ticks:
        now = clock()
        nxt = next_run(now, s.nightly_at)
        log.info("next publication scheduled", extra={"at": nxt.isoformat(), "target": target})
        click.echo(f"next publication at {nxt:%Y-%m-%d %H:%M} UTC to {target}", err=True)
        sleep(max(0.0, (nxt - clock()).total_seconds()))
        yesterday = nxt.date() - timedelta(days=1)
        first = yesterday - timedelta(days=s.lookback_days)
        try:
            res = publish(
                url,
                target,
                s,
                start=first,
                end=yesterday,
                datasets=names,
                csv=csv,
                today=nxt.date(),
            )
        except LuftnettError as exc:
            log.error("nightly publication failed", extra={"error": str(exc)})
            click.echo(f"error: nightly publication failed: {exc}", err=True)
            res = PublishResult(target, None, None)
        else:
            log.info("nightly publication done", extra={"summary": res.summary()})
            click.echo(res.summary())
        results.append(res)
    return results
